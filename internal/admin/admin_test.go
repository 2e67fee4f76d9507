package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/raftstore"
)

// fakeEngine stands in for the node's raftstore.Engine.
type fakeEngine struct {
	mu          sync.Mutex
	err         error
	groups      []raftstore.GroupStatus
	transferErr error
	transfers   int
	dropped     []string
}

func (e *fakeEngine) Err() error { return e.err }

func (e *fakeEngine) Status() []raftstore.GroupStatus { return e.groups }

func (e *fakeEngine) TransferLeadership(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.transfers++
	return e.transferErr
}

func (e *fakeEngine) OpenCut(uint64, string) (*raftstore.Cut, bool) { return nil, false }

func (e *fakeEngine) DropCut(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dropped = append(e.dropped, id)
}

// fixture is an admin API on node 1 of three nodes and three partitions,
// with every dependency a fake the test can set and inspect.
type fixture struct {
	eng    *fakeEngine
	cfg    Config
	nodes  []api.NodeRecord
	health api.Health
	// write answers Config.Write; nil answers +OK.
	write  func(group uint64, args [][]byte) string
	mu     sync.Mutex
	writes []writeCall
}

type writeCall struct {
	group uint64
	args  []string
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{
		eng: &fakeEngine{},
		nodes: []api.NodeRecord{
			{ID: 1, HTTPAddr: "127.0.0.1:1", State: api.NodeUp},
			{ID: 2, HTTPAddr: "127.0.0.1:2", State: api.NodeUp},
			{ID: 3, State: api.NodeDead},
		},
	}
	parts := []api.PartitionRecord{
		{ID: 0, SlotStart: 0, SlotEnd: 5460, Replicas: []uint64{1, 2, 3}},
		{ID: 1, SlotStart: 5461, SlotEnd: 10922, Replicas: []uint64{2, 3, 1}},
		{ID: 2, SlotStart: 10923, SlotEnd: 16383, Replicas: []uint64{3, 1, 2}},
	}
	f.cfg = Config{
		NodeID:    1,
		ClusterID: "c-test",
		Engine:    f.eng,
		Write: func(_ context.Context, group uint64, args [][]byte) []byte {
			call := writeCall{group: group}
			for _, a := range args {
				call.args = append(call.args, string(a))
			}
			f.mu.Lock()
			f.writes = append(f.writes, call)
			write := f.write
			f.mu.Unlock()
			if write == nil {
				return []byte("+OK\r\n")
			}
			return []byte(write(group, args))
		},
		Partitions: func() []api.PartitionRecord { return parts },
		Nodes:      func() []api.NodeRecord { return slices.Clone(f.nodes) },
		// Partition p is led by its first replica.
		Leader:      func(group uint64) uint64 { return parts[group].Replicas[0] },
		GroupNodes:  func(group uint64) []uint64 { return parts[group].Replicas },
		PartitionOf: func(key []byte) uint64 { return uint64(key[0]-'a') % 3 },
		Health:      func() api.Health { return f.health },
		SetNodeState: func(context.Context, uint64, string) error {
			t.Error("SetNodeState called unexpectedly")
			return nil
		},
		Metrics:        prometheus.NewRegistry(),
		RequestTimeout: time.Second,
		Context:        t.Context(),
		Logger:         slog.New(slog.DiscardHandler),
	}
	return f
}

func (f *fixture) calls() []writeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.writes)
}

// do serves one request and returns its status and body.
func do(t *testing.T, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

// The probes answer the node's verdict: liveness its own reasons,
// readiness all of them, each in one line naming no data.
func TestHealthAndReadiness(t *testing.T) {
	f := newFixture(t)
	a := New(f.cfg)
	h := a.Handler()
	stalled := "engine loop stalled for 12s"
	for _, c := range []struct {
		what   string
		health api.Health
		path   string
		code   int
		body   string
	}{
		{"healthy", api.Health{}, "/healthz", 200, "ok\n"},
		{"ready", api.Health{}, "/readyz", 200, "ready\n"},
		{"rebuilding", api.Health{Rebuilding: []int{3}}, "/readyz", 200, "ready; rebuilding the replicas of partitions [3] from their peers (their data here was damaged)\n"},
		{"frozen loop", api.Health{NotLive: []string{stalled}, NotReady: []string{stalled}}, "/healthz", 503, "not live: " + stalled + "\n"},
		{"frozen loop", api.Health{NotLive: []string{stalled}, NotReady: []string{stalled}}, "/readyz", 503, "not ready: " + stalled + "\n"},
		{"no quorum: live", api.Health{NotReady: []string{"partition 5 has no leader with a quorum"}}, "/healthz", 200, "ok\n"},
		{"no quorum and removed", api.Health{NotReady: []string{"node removed from the cluster", "partition 5 has no leader with a quorum"}, Removed: true},
			"/readyz", 503, "not ready: node removed from the cluster; partition 5 has no leader with a quorum\n"},
	} {
		f.health = c.health
		if code, body := do(t, h, http.MethodGet, c.path, ""); code != c.code || body != c.body {
			t.Errorf("%s: GET %s = %d %q, want %d %q", c.what, c.path, code, body, c.code, c.body)
		}
	}
	f.health = api.Health{NotReady: []string{"node removed from the cluster"}, Removed: true}
	if st := a.Status(); st.Ready || !st.Removed || len(st.NotReady) != 1 {
		t.Errorf("status of a removed node: ready %v removed %v reasons %q", st.Ready, st.Removed, st.NotReady)
	}
	f.health = api.Health{NotReady: []string{"partition 1 has no leader with a quorum"}, Lost: []int{1}}
	if st := a.Status(); st.Ready || st.Partitions[0].NoQuorum || !st.Partitions[1].NoQuorum || st.Partitions[2].NoQuorum {
		t.Errorf("status without a quorum for partition 1: %+v", st)
	}
}

// The status page takes each partition from the map, except where this
// node hosts a replica: that replica knows the membership best.
func TestStatusPrefersTheLocalReplica(t *testing.T) {
	f := newFixture(t)
	f.eng.groups = []raftstore.GroupStatus{{Group: 1, Nodes: []uint64{2, 1, 4}, Learners: []uint64{5}, AppliedIndex: 7, Term: 3, Role: "follower", Keys: 11}}
	a := New(f.cfg)
	code, body := do(t, a.Handler(), http.MethodGet, "/v1/status", "")
	var st api.StatusJSON
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("GET /v1/status = %d %v: %s", code, err, body)
	}
	if st.NodeID != 1 || st.ClusterID != "c-test" || st.Version != api.Version || !st.Ready || len(st.Nodes) != 3 || len(st.Partitions) != 3 {
		t.Fatalf("status %+v", st)
	}
	p0, p1 := st.Partitions[0], st.Partitions[1]
	if !slices.Equal(p0.Replicas, []uint64{1, 2, 3}) || p0.Local != "" || p0.Leader != 1 {
		t.Errorf("partition 0, not hosted here: %+v", p0)
	}
	if !slices.Equal(p1.Replicas, []uint64{2, 1, 4}) || !slices.Equal(p1.Learners, []uint64{5}) || p1.AppliedIndex != 7 || p1.Term != 3 || p1.Local != "follower" || p1.Keys != 11 || p1.Leader != 2 {
		t.Errorf("partition 1, hosted here: %+v", p1)
	}
}

// A transfer answers how many partitions the node still leads, with 503
// when it did not finish.
func TestLeadershipTransfer(t *testing.T) {
	f := newFixture(t)
	f.eng.groups = []raftstore.GroupStatus{{Group: 0, LeaderNode: 1}, {Group: 1, LeaderNode: 2}, {Group: 2, LeaderNode: 1}}
	h := New(f.cfg).Handler()
	if code, body := do(t, h, http.MethodPost, "/v1/leadership/transfer", ""); code != 200 || body != "{\"still_leading\":2}\n" {
		t.Errorf("transfer = %d %q", code, body)
	}
	f.eng.transferErr = context.DeadlineExceeded
	if code, body := do(t, h, http.MethodPost, "/v1/leadership/transfer", ""); code != 503 || body != "{\"still_leading\":2}\n" {
		t.Errorf("unfinished transfer = %d %q", code, body)
	}
	if f.eng.transfers != 2 {
		t.Errorf("%d transfers, want 2", f.eng.transfers)
	}
}

func TestMemberRoutes(t *testing.T) {
	f := newFixture(t)
	type call struct {
		id    uint64
		state string
	}
	var got []call
	refuse := false
	f.cfg.SetNodeState = func(_ context.Context, id uint64, state string) error {
		got = append(got, call{id, state})
		if refuse {
			return errors.New("ERR node 9 was removed")
		}
		return nil
	}
	h := New(f.cfg).Handler()
	for _, c := range []struct {
		path    string
		refuse  bool
		code    int
		body    string
		applied *call
	}{
		{"/v1/nodes/x/decommission", false, 400, "node id must be a positive integer\n", nil},
		{"/v1/nodes/0/remove", false, 400, "node id must be a positive integer\n", nil},
		{"/v1/nodes/2/decommission", false, 200, "ok\n", &call{2, api.NodeDraining}},
		{"/v1/nodes/2/remove", false, 409, "node 2 is up, not dead: decommission it (its replicas move away first), or add ?force=true\n", nil},
		{"/v1/nodes/2/remove?force=true", false, 200, "ok\n", &call{2, api.NodeRemoved}},
		{"/v1/nodes/3/remove", false, 200, "ok\n", &call{3, api.NodeRemoved}},
		{"/v1/nodes/9/decommission", true, 409, "ERR node 9 was removed\n", &call{9, api.NodeDraining}},
	} {
		got, refuse = nil, c.refuse
		code, body := do(t, h, http.MethodPost, c.path, "")
		if code != c.code || body != c.body {
			t.Errorf("POST %s = %d %q, want %d %q", c.path, code, body, c.code, c.body)
		}
		if (c.applied == nil) != (len(got) == 0) || (c.applied != nil && (len(got) != 1 || got[0] != *c.applied)) {
			t.Errorf("POST %s recorded %v, want %v", c.path, got, c.applied)
		}
	}
	if code, _ := do(t, h, http.MethodGet, "/v1/nodes/2/decommission", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET of a membership route = %d", code)
	}
}
