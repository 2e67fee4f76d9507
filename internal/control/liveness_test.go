package control

import (
	"bytes"
	"context"
	"log/slog"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/statemachine"
)

func TestLivenessOf(t *testing.T) {
	const now = 1_000_000
	every, dead := time.Second, 10*time.Second
	for _, c := range []struct {
		rec  api.NodeRecord
		want string
	}{
		{api.NodeRecord{State: api.NodeUp, HeartbeatMS: now}, api.NodeUp},
		{api.NodeRecord{State: api.NodeUp, HeartbeatMS: now - 2999}, api.NodeUp},
		{api.NodeRecord{State: api.NodeUp, HeartbeatMS: now - 3000}, api.NodeSuspect},
		{api.NodeRecord{State: api.NodeUp, HeartbeatMS: now - 9999}, api.NodeSuspect},
		{api.NodeRecord{State: api.NodeUp, HeartbeatMS: now - 10000}, api.NodeDead},
		{api.NodeRecord{State: api.NodeUp}, api.NodeSuspect},
		{api.NodeRecord{State: api.NodeUp, HeartbeatMS: now + 500}, api.NodeUp}, // the reader's clock is behind
		{api.NodeRecord{State: api.NodeDraining, HeartbeatMS: now - 60000}, api.NodeDraining},
		{api.NodeRecord{State: api.NodeRemoved, HeartbeatMS: now}, api.NodeRemoved},
	} {
		if got := LivenessOf(c.rec, now, every, dead); got != c.want {
			t.Errorf("%+v: got %s, want %s", c.rec, got, c.want)
		}
	}
}

// The heartbeat writes the node's id and addresses into the metadata
// group, each within a few intervals, and says once, not every beat, that
// the node was removed.
func TestHeartbeatWritesAndWarnsOnceWhenRemoved(t *testing.T) {
	type beat struct {
		group    uint64
		args     string
		deadline time.Duration
	}
	beats := make(chan beat, 100)
	logs := &syncBuffer{}
	var removed atomic.Int32
	h := NewHeartbeat(HeartbeatConfig{
		NodeID: 7, RESPAddr: "r:1", HTTPAddr: "h:1", Every: 5 * time.Millisecond, RequestTimeout: time.Minute,
		Write: func(ctx context.Context, group uint64, args [][]byte) []byte {
			dl, _ := ctx.Deadline()
			beats <- beat{group, string(bytes.Join(args, []byte(" "))), time.Until(dl)}
			return []byte("-" + statemachine.ErrNodeRemoved + "\r\n")
		},
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
		Removed: func() { removed.Add(1) },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	for range 3 {
		select {
		case b := <-beats:
			if b.group != statemachine.MetaGroup || b.args != statemachine.CmdHeartbeat+" 7 r:1 h:1" {
				t.Fatalf("heartbeat %+v", b)
			}
			if b.deadline > SuspectAfter*5*time.Millisecond {
				t.Fatalf("a heartbeat may take %v, longer than %d intervals", b.deadline, SuspectAfter)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no heartbeat within 10 s")
		}
	}
	cancel()
	<-done
	if n := strings.Count(logs.String(), "this node was removed"); n != 1 {
		t.Fatalf("warned %d times that the node was removed:\n%s", n, logs.String())
	}
	if n := removed.Load(); n != 1 {
		t.Fatalf("told the node %d times that it was removed", n)
	}
}

// The registry shows every node's derived state and this node's own
// addresses, sorted by id, and leaves the shared map untouched.
func TestRegistryNodes(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	m0 := &ClusterMap{Nodes: []api.NodeRecord{
		{ID: 3, State: api.NodeUp, HeartbeatMS: now.UnixMilli() - 60_000},
		{ID: 1, State: api.NodeUp},
		{ID: 2, State: api.NodeDraining, HeartbeatMS: now.UnixMilli()},
	}}
	before := string(m0.Marshal())
	r := NewRegistry(RegistryConfig{
		NodeID: 1, RESPAddr: "r:1", HTTPAddr: "h:1", Every: time.Second, Dead: 10 * time.Second,
		Now: func() time.Time { return now }, Map: NewMap(MapConfig{Saved: func() ([]byte, bool) { return nil, false }}, m0),
	})
	got := r.Nodes()
	want := []api.NodeRecord{
		{ID: 1, State: api.NodeSuspect, RESPAddr: "r:1", HTTPAddr: "h:1"},
		{ID: 2, State: api.NodeDraining, HeartbeatMS: now.UnixMilli(), LastHeartbeat: "1970-01-01T00:16:40Z"},
		{ID: 3, State: api.NodeDead, HeartbeatMS: now.UnixMilli() - 60_000, LastHeartbeat: "1970-01-01T00:15:40Z"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("registry:\n%+v\nwant\n%+v", got, want)
	}
	if string(m0.Marshal()) != before {
		t.Fatal("reading the registry changed the published map")
	}
}
