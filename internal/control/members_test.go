package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// metaWrites records writes to the metadata group and answers them.
type metaWrites struct {
	got   []string
	reply string
}

func (w *metaWrites) write(_ context.Context, group uint64, args [][]byte) []byte {
	if group != statemachine.MetaGroup {
		return []byte("-ERR not the metadata group\r\n")
	}
	w.got = append(w.got, string(bytes.Join(args, []byte(" "))))
	return []byte(w.reply)
}

func TestServeJoin(t *testing.T) {
	m0 := InitialMap(map[uint64]string{1: "a:1"}, testParts(2, 1), []uint64{1})
	w := &metaWrites{reply: okReply}
	peers := &fakePeers{}
	nodes := []api.NodeRecord{{ID: 1, State: api.NodeUp}}
	mem := NewMembers(MembersConfig{
		Identity: api.Identity{ClusterID: "c1", NodeID: 1, Partitions: 2},
		Write:    w.write, Peers: peers, Map: NewMap(MapConfig{Saved: func() ([]byte, bool) { return nil, false }}, m0),
		Nodes: func() []api.NodeRecord { return nodes },
	})
	ctx := context.Background()
	for _, bad := range []string{"{", `{"id":0,"peer_addr":"x:1"}`, `{"id":4}`} {
		if _, err := mem.ServeJoin(ctx, []byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("join %s: %v, want malformed", bad, err)
		}
	}
	if len(w.got) != 0 {
		t.Fatalf("malformed joins reached the metadata: %q", w.got)
	}
	body := mustMarshal(api.NodeRecord{ID: 4, PeerAddr: "d:1"})
	b, err := mem.ServeJoin(ctx, body)
	if err != nil {
		t.Fatal(err)
	}
	var jr api.JoinJSON
	if err := json.Unmarshal(b, &jr); err != nil {
		t.Fatal(err)
	}
	if jr.Identity.NodeID != 4 || jr.Identity.ClusterID != "c1" || !reflect.DeepEqual(jr.Nodes, nodes) || !reflect.DeepEqual(jr.Map, m0.JSON()) {
		t.Fatalf("join answer %+v", jr)
	}
	if want := statemachine.CmdNodeJoin + " 4 d:1"; len(w.got) != 1 || w.got[0] != want {
		t.Fatalf("wrote %q, want %q", w.got, want)
	}
	if peers.addr(4) != "d:1" {
		t.Fatal("the new node's address was not given to the transport")
	}

	w.reply = "-ERR node 4 was removed from the cluster\r\n"
	if _, err := mem.ServeJoin(ctx, body); err == nil || err.Error() != "ERR node 4 was removed from the cluster" {
		t.Fatalf("a refused join: %v", err)
	}
	if err := mem.SetNodeState(ctx, 3, api.NodeDraining); err == nil || !strings.Contains(err.Error(), "was removed") {
		t.Fatalf("a refused state change: %v", err)
	}
	w.reply = okReply
	if err := mem.SetNodeState(ctx, 3, api.NodeDraining); err != nil {
		t.Fatal(err)
	}
	if last := w.got[len(w.got)-1]; last != statemachine.CmdNodeState+" 3 "+api.NodeDraining {
		t.Fatalf("wrote %q", last)
	}
}

// The joining side retries a seed that does not answer, gives up at once
// when the cluster refuses, and on success saves the map and learns the
// members' addresses.
func TestJoin(t *testing.T) {
	m0 := InitialMap(map[uint64]string{1: "a:1", 2: "b:1", 3: "c:1"}, testParts(2, 1), []uint64{1})
	answer := api.JoinJSON{
		Identity: api.Identity{ClusterID: "c1", NodeID: 9},
		Nodes:    []api.NodeRecord{{ID: 1, PeerAddr: "a:1"}, {ID: 2, PeerAddr: "b:1", State: api.NodeRemoved}, {ID: 9, PeerAddr: "me:1"}},
		Map:      m0.JSON(),
	}
	calls := 0
	peers := &fakePeers{answer: func(node uint64, method string, body []byte) ([]byte, error) {
		if node != joinSeed || method != MethodJoin || string(body) != string(mustMarshal(api.JoinRequest{NodeRecord: api.NodeRecord{ID: 9, PeerAddr: "me:1"}, Level: api.Level})) {
			return nil, errors.New("unexpected call")
		}
		if calls++; calls < 3 {
			return nil, errors.New("connection refused")
		}
		return mustMarshal(answer), nil
	}}
	var saved []byte
	cfg := JoinConfig{
		NodeID: 9, PeerAddr: "me:1", Seed: "seed:1", Timeout: 30 * time.Second, RequestTimeout: time.Second,
		Peers: peers, Save: func(b []byte) { saved = b }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	id, err := Join(context.Background(), cfg)
	if err != nil || id != answer.Identity || calls != 3 {
		t.Fatalf("joined as %+v, %v after %d calls", id, err, calls)
	}
	if peers.addr(joinSeed) != "seed:1" || peers.addr(1) != "a:1" || peers.addr(2) != "" || peers.addr(9) != "" {
		t.Fatalf("addresses learnt: %v", peers.addrs)
	}
	if got, ok := UnmarshalMap(saved); !ok || !reflect.DeepEqual(got, m0) {
		t.Fatalf("saved map %s", saved)
	}

	calls = 0
	peers.answer = func(uint64, string, []byte) ([]byte, error) {
		calls++
		return nil, errors.New("ERR node 9 is already a member")
	}
	if _, err := Join(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "already a member") || calls != 1 {
		t.Fatalf("a refused join: %v after %d calls", err, calls)
	}
}
