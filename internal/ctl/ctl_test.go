package ctl

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/ring"
)

func sample() api.StatusJSON {
	st := api.StatusJSON{NodeID: 2, ClusterID: "c-1", Version: "test", Ready: true,
		Nodes: []api.NodeRecord{
			{ID: 1, State: "up", HeartbeatMS: 1764748800123, RESPAddr: "127.0.0.1:7001", HTTPAddr: "127.0.0.1:8001", PeerAddr: "127.0.0.1:9001"},
			{ID: 2, State: "suspect", RESPAddr: "127.0.0.1:7002"},
		}}
	per := 16384 / 4
	for i := range 4 {
		p := api.PartitionStatus{ID: i, SlotStart: uint16(i * per), SlotEnd: uint16((i+1)*per - 1), Replicas: []uint64{1, 2}, Leader: uint64(1 + i%2)}
		if i == 3 {
			p.Leader = 0
		}
		if i%2 == 1 {
			p.Local, p.Keys, p.AppliedIndex = "follower", 42, 7
		}
		if i == 2 {
			p.Learners = []uint64{3}
		}
		st.Partitions = append(st.Partitions, p)
	}
	return st
}

func TestPrintStatus(t *testing.T) {
	var b bytes.Buffer
	if err := PrintStatus(&b, sample(), nil); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"cluster c-1, as node 2 sees it (kintsu test): NOT READY, 2 nodes, 4 partitions, 1 without a leader with a quorum\n",
		"NODE  STATE    READYZ  HEARTBEAT (UTC)  LEADS  RESP            HTTP            PEER",
		"1     up       -       08:00:00.123     2      127.0.0.1:7001  127.0.0.1:8001  127.0.0.1:9001",
		"2     suspect  -       -                1      127.0.0.1:7002  -               -",
		"0          0-4095       1,2             1           -     -",
		"1          4096-8191    1,2             2           42    7",
		"2          8192-12287   1,2 +3 joining  1           -     -",
		"3          12288-16383  1,2             none known  42    7",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestLocate(t *testing.T) {
	st := sample()
	for _, key := range []string{"a", "user:1", "{user:1}:name", ""} {
		loc, err := Locate(st, key)
		if err != nil {
			t.Fatal(err)
		}
		if loc.Slot != ring.Slot([]byte(key)) || loc.Partition.ID != ring.PartitionOf(loc.Slot, 4) {
			t.Fatalf("%q: slot %d partition %d, want %d %d", key, loc.Slot, loc.Partition.ID, ring.Slot([]byte(key)), ring.PartitionOf(ring.Slot([]byte(key)), 4))
		}
	}
	loc, _ := Locate(st, "{user:1}:name")
	var b bytes.Buffer
	if err := PrintLocation(&b, loc, st); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "replicas    1 (127.0.0.1:7001), 2 (127.0.0.1:7002)") || !strings.Contains(out, "as seen by  node 2") {
		t.Fatalf("location:\n%s", out)
	}
	st.Partitions = st.Partitions[:1]
	if _, err := Locate(st, "zzz-not-in-partition-0"); err == nil && ring.PartitionOf(ring.Slot([]byte("zzz-not-in-partition-0")), 4) != 0 {
		t.Fatal("a slot no partition covers was located")
	}
}

// Fetch says clearly what went wrong: a node that answers an error, or a
// body that is not a status.
func TestFetchErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("x") == "" && r.URL.Path == "/v1/status" {
			_, _ = w.Write([]byte("not json"))
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if _, err := Fetch(context.Background(), addr); err == nil || !strings.Contains(err.Error(), "unreadable status") {
		t.Fatalf("bad body: %v", err)
	}
	srv.Config.Handler = http.NotFoundHandler()
	if _, err := Fetch(context.Background(), addr); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404: %v", err)
	}
	srv.Close()
	if _, err := Fetch(context.Background(), addr); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("closed: %v", err)
	}
}

// Two of three nodes paused: the one that answers says why it is not
// ready, the paused ones show as not answering, and nothing says ready.
func TestPrintStatusNotReady(t *testing.T) {
	st := sample()
	st.Ready, st.NotReady = false, []string{"partitions 1, 2 have no leader with a quorum"}
	st.Partitions[1].NoQuorum, st.Partitions[2].NoQuorum = true, true
	st.Nodes = append(st.Nodes, api.NodeRecord{ID: 3, State: "suspect", HTTPAddr: "127.0.0.1:8003"})
	probes := map[uint64]Probe{
		1: {Why: "no answer (timed out)"},
		2: {Answered: true, Why: "partitions 1, 2 have no leader with a quorum"},
		3: {Answered: true, Why: "engine loop stalled for 12s"},
	}
	var b bytes.Buffer
	if err := PrintStatus(&b, st, probes); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"cluster c-1, as node 2 sees it (kintsu test): NOT READY, 3 nodes, 4 partitions, 3 without a leader with a quorum, 1 not answering\n",
		"  node 2 not ready: partitions 1, 2 have no leader with a quorum\n",
		"1     up       no answer  08:00:00.123     1 ",
		"2     suspect  NOT READY  -                0 ",
		"3     suspect  NOT READY",
		"  node 1: no answer (timed out)\n",
		"  node 3: engine loop stalled for 12s\n",
		"1          4096-8191    1,2             none with a quorum",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, ": ready") {
		t.Errorf("says ready:\n%s", out)
	}
	st = sample()
	st.Ready, st.Removed, st.NotReady = false, true, []string{"node removed from the cluster"}
	b.Reset()
	if err := PrintStatus(&b, st, nil); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "node 2 WAS REMOVED from the cluster") || !strings.Contains(out, "NOT READY") {
		t.Errorf("a removed node's status:\n%s", out)
	}
}

// Every node is asked at once, each within its deadline: a paused node
// (it accepts and never answers) costs the deadline, not a hang, and the
// words of a node reach the terminal without control characters.
func TestProbeAll(t *testing.T) {
	release := make(chan struct{})
	paused := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer paused.Close()
	defer close(release)
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			_, _ = w.Write([]byte("ready\n"))
		}
	}))
	defer ready.Close()
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not ready: partition 5 has no leader with a quorum\x1b[2J", http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	st := api.StatusJSON{Nodes: []api.NodeRecord{
		{ID: 1, HTTPAddr: addr(ready)}, {ID: 2, HTTPAddr: addr(notReady)}, {ID: 3, HTTPAddr: addr(paused)}, {ID: 4},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	got := ProbeAll(ctx, st)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("probing took %v", took)
	}
	want := map[uint64]Probe{
		1: {Answered: true, Ready: true},
		2: {Answered: true, Why: "partition 5 has no leader with a quorum?[2J"},
		3: {Why: "no answer (timed out)"},
	}
	if len(got) != len(want) {
		t.Fatalf("probes %+v", got)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("node %d: %+v, want %+v", id, got[id], w)
		}
	}
}
