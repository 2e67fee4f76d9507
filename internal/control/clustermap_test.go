package control

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// testParts are n partitions of equal ranges on the given replicas.
func testParts(n int, replicas ...uint64) []api.PartitionRecord {
	var out []api.PartitionRecord
	for p := range n {
		lo, hi := ring.SlotRange(p, n)
		out = append(out, api.PartitionRecord{ID: p, SlotStart: lo, SlotEnd: hi, Replicas: replicas})
	}
	return out
}

func TestMapMarshalRoundTrip(t *testing.T) {
	m := InitialMap(map[uint64]string{3: "c:1", 1: "a:1", 2: "b:1"}, testParts(4, 1, 2, 3), []uint64{1, 2, 3})
	if m.Nodes[0].ID != 1 || m.Nodes[2].ID != 3 || m.Nodes[1].State != api.NodeUp {
		t.Fatalf("initial nodes not sorted by id, or not up: %+v", m.Nodes)
	}
	got, ok := UnmarshalMap(m.Marshal())
	if !ok || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: %+v (%v), want %+v", got, ok, m)
	}
	for _, bad := range []string{"", "{", `{"nodes":[]}`, `{"parts":[{"id":0}]}`} {
		if _, ok := UnmarshalMap([]byte(bad)); ok {
			t.Errorf("UnmarshalMap(%q) accepted", bad)
		}
	}
	if h := m.Holders(statemachine.MetaGroup); !reflect.DeepEqual(h, []uint64{1, 2, 3}) {
		t.Errorf("metadata holders %v", h)
	}
	if h := m.Holders(9); h != nil {
		t.Errorf("holders of a partition the map does not have: %v", h)
	}
}

func TestNewMapStartsFromTheSavedMap(t *testing.T) {
	initial := InitialMap(map[uint64]string{1: "a:1"}, testParts(4, 1), []uint64{1})
	saved := InitialMap(map[uint64]string{1: "a:1", 2: "b:1"}, testParts(4, 2), []uint64{2})
	split := InitialMap(map[uint64]string{1: "a:1", 2: "b:1"}, testParts(8, 2), []uint64{2})
	torn := InitialMap(map[uint64]string{1: "a:1", 2: "b:1"}, testParts(8, 2)[1:], []uint64{2})
	for _, c := range []struct {
		name  string
		saved []byte
		want  *ClusterMap
	}{
		{"nothing saved", nil, initial},
		{"saved", saved.Marshal(), saved},
		{"unreadable", []byte("{"), initial},
		{"more partitions (a split)", split.Marshal(), split},
		{"a slot owned by none", torn.Marshal(), initial},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := MapConfig{Saved: func() ([]byte, bool) { return c.saved, c.saved != nil }}
			if got := NewMap(cfg, initial).Current(); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("started from %+v, want %+v", got, c.want)
			}
		})
	}
}

// fakeEngine is the engine's read side: the groups hosted here and their
// data, and who leads them.
type fakeEngine struct {
	mu     sync.Mutex
	data   map[uint64][][2]string // group -> sorted key/values
	colls  map[uint64][]fakeColl  // group -> collections, by pos
	status []raftstore.GroupStatus
}

// fakeColl is a collection version holding sub-keys, as ScanCollections
// reports it; pos orders them.
type fakeColl struct {
	pos, k  string
	ver     uint64
	stored  string
	present bool
}

func (e *fakeEngine) ScanCollections(group uint64, from []byte, fn func(k []byte, ver uint64, stored []byte, present bool, next []byte) bool) error {
	e.mu.Lock()
	cs := e.colls[group]
	e.mu.Unlock()
	for _, c := range cs {
		if c.pos >= string(from) && !fn([]byte(c.k), c.ver, []byte(c.stored), c.present, []byte(c.pos+"\x00")) {
			break
		}
	}
	return nil
}

func (e *fakeEngine) Status() []raftstore.GroupStatus { return e.status }

func (e *fakeEngine) HasGroup(group uint64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.data[group]
	return ok
}

func (e *fakeEngine) ScanData(group uint64, from []byte, fn func(k, v []byte) bool) error {
	e.mu.Lock()
	kvs := e.data[group]
	e.mu.Unlock()
	for _, kv := range kvs {
		if kv[0] >= string(from) && !fn([]byte(kv[0]), []byte(kv[1])) {
			break
		}
	}
	return nil
}

// fakePeers answers calls from a table and records SetPeer.
type fakePeers struct {
	mu     sync.Mutex
	answer func(node uint64, method string, body []byte) ([]byte, error)
	calls  []string
	addrs  map[uint64]string
}

func (p *fakePeers) Call(_ context.Context, node uint64, method string, body []byte) ([]byte, error) {
	p.mu.Lock()
	p.calls = append(p.calls, method)
	p.mu.Unlock()
	return p.answer(node, method, body)
}

func (p *fakePeers) SetPeer(node uint64, addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.addrs == nil {
		p.addrs = map[uint64]string{}
	}
	p.addrs[node] = addr
}

func (p *fakePeers) addr(node uint64) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[node]
}

// A node without a metadata replica asks the metadata nodes for the map,
// skipping those that do not answer; it publishes and saves what it gets
// and learns the members' addresses, never a removed node's.
func TestMapRefreshAsksTheMetadataNodes(t *testing.T) {
	initial := InitialMap(map[uint64]string{1: "a:1", 2: "b:1", 3: "c:1"}, testParts(2, 1, 2, 3), []uint64{2, 3})
	fresh := InitialMap(map[uint64]string{1: "a:1", 2: "b:1", 3: "c:1", 4: "d:1", 5: "e:1"}, testParts(2, 2, 3, 4), []uint64{2, 3, 4})
	fresh.Nodes[4].State = api.NodeRemoved
	peers := &fakePeers{answer: func(node uint64, method string, _ []byte) ([]byte, error) {
		if method != MethodClusterMap {
			return nil, errors.New("unexpected method " + method)
		}
		if node == 3 {
			return fresh.Marshal(), nil
		}
		return nil, errors.New("unreachable")
	}}
	saved := make(chan []byte, 10)
	m := NewMap(MapConfig{
		NodeID: 1, Every: 10 * time.Millisecond,
		Engine: &fakeEngine{}, Peers: peers,
		Saved: func() ([]byte, bool) { return nil, false },
		Save:  func(b []byte) { saved <- b },
	}, initial)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	select {
	case b := <-saved:
		if got, _ := UnmarshalMap(b); !reflect.DeepEqual(got, fresh) {
			t.Fatalf("saved %s", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no map saved within 10 s")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !reflect.DeepEqual(m.Current(), fresh) || peers.addr(4) == "" {
		if time.Now().After(deadline) {
			t.Fatalf("map %+v, peer 4 at %q", m.Current(), peers.addr(4))
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
	if a := peers.addr(5); a != "" {
		t.Errorf("a removed node's address was given to the transport: %s", a)
	}
	if a := peers.addr(1); a != "" {
		t.Errorf("this node's own address was given to the transport: %s", a)
	}
	if b, _ := m.Serve(); !reflect.DeepEqual(b, fresh.Marshal()) {
		t.Errorf("without a metadata replica the node serves its own view: got %s", b)
	}
	select {
	case b := <-saved:
		t.Errorf("an unchanged map was saved again: %s", b)
	default:
	}
}

// A metadata replica's own data is the map; without the group key the
// bootstrap metadata nodes stand in.
func TestMapServedFromTheLocalMetadataReplica(t *testing.T) {
	rec := func(id uint64) string {
		return string(mustMarshal(api.NodeRecord{ID: id, PeerAddr: "x:1", State: api.NodeUp}))
	}
	part := func(id int) string {
		lo, hi := ring.SlotRange(id, 2)
		return string(mustMarshal(api.PartitionRecord{ID: id, SlotStart: lo, SlotEnd: hi, Replicas: []uint64{1}}))
	}
	eng := &fakeEngine{data: map[uint64][][2]string{statemachine.MetaGroup: {
		{"node/1", rec(1)}, {"partition/0", part(0)}, {"partition/1", part(1)},
	}}}
	m := NewMap(MapConfig{NodeID: 1, Engine: eng, MetaNodes: []uint64{1},
		Saved: func() ([]byte, bool) { return nil, false }}, &ClusterMap{})
	b, _ := m.Serve()
	got, ok := UnmarshalMap(b)
	if !ok || len(got.Parts) != 2 || !reflect.DeepEqual(got.Meta, []uint64{1}) || got.Nodes[0].ID != 1 {
		t.Fatalf("served %s", b)
	}
	eng.data[statemachine.MetaGroup] = eng.data[statemachine.MetaGroup][:2] // a partition is missing
	if b, _ := m.Serve(); string(b) != string((&ClusterMap{}).Marshal()) {
		t.Fatalf("incomplete metadata served as the map: %s", b)
	}
}

// The map's slot table follows the records' ranges, whatever their ids:
// after a split the right half's slots go to the new partition, and a
// map torn between the two records (a slot owned twice or by none) has
// no table and is not used.
func TestMapSlotsFollowTheRecords(t *testing.T) {
	parts := testParts(2, 1, 2, 3)
	split := append(slices.Clone(parts), api.PartitionRecord{ID: 7, SlotStart: 12000, SlotEnd: 16383, Replicas: []uint64{1, 2, 3}})
	split[1].SlotEnd = 11999
	m := InitialMap(map[uint64]string{1: "a:1"}, split, nil)
	tb := m.Slots()
	if tb == nil {
		t.Fatal("no slot table for a split map")
	}
	for slot, want := range map[uint16]uint64{0: 0, 8191: 0, 8192: 1, 11999: 1, 12000: 7, 16383: 7} {
		if got := tb.GroupOf(slot); got != want {
			t.Errorf("slot %d -> partition %d, want %d", slot, got, want)
		}
	}
	if p, ok := m.Part(7); !ok || p.SlotStart != 12000 {
		t.Errorf("Part(7) = %+v %v", p, ok)
	}
	torn := append(slices.Clone(parts), api.PartitionRecord{ID: 7, SlotStart: 12000, SlotEnd: 16383})
	if InitialMap(map[uint64]string{1: "a:1"}, torn, nil).usable() {
		t.Error("a map owning slots twice is usable")
	}
}

// A node starting from a saved map tells the transport its members'
// addresses before any refresh: a joined node knows only the initial
// members' otherwise, and if they are gone it can ask no one for a newer
// map.
func TestSavedMapIntroducesPeers(t *testing.T) {
	initial := InitialMap(map[uint64]string{1: "a:1", 2: "b:1"}, testParts(2, 1, 2), []uint64{1, 2})
	saved := InitialMap(map[uint64]string{1: "a:1", 2: "b:1", 6: "f:1", 7: "g:1", 9: "i:1"}, testParts(2, 6, 7, 9), []uint64{6, 7, 9})
	saved.Nodes[0].State, saved.Nodes[1].State = api.NodeRemoved, api.NodeRemoved
	peers := &fakePeers{}
	NewMap(MapConfig{NodeID: 9, Peers: peers, Saved: func() ([]byte, bool) { return saved.Marshal(), true }}, initial)
	for _, id := range []uint64{6, 7} {
		if peers.addr(id) == "" {
			t.Errorf("node %d's address was not given to the transport", id)
		}
	}
	for _, id := range []uint64{1, 2, 9} {
		if a := peers.addr(id); a != "" {
			t.Errorf("node %d (removed, or this node) was given as %q", id, a)
		}
	}
}
