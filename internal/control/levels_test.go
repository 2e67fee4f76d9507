package control

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// The driver raises the cluster's level only once every member that is
// not removed answers this build's level: a node of an older build (it
// does not know the call), one that does not answer, or one not up holds
// it; a level already reached asks nobody.
func TestRaiseLevelWaitsForEveryMember(t *testing.T) {
	for _, c := range []struct {
		name    string
		level   int // the map's
		states  map[uint64]string
		answers map[uint64]error // nil: answers api.Level
		old     uint64           // answers 0
		want    bool
		ids     string // the members the raise names
		// removedHolds: node 3 (removed) still holds a replica
		removedHolds bool
		maxCalls     int
	}{
		{name: "every member current", states: map[uint64]string{2: api.NodeUp, 3: api.NodeUp}, want: true, ids: "1 2 3", maxCalls: 2},
		{name: "removed nodes do not count", states: map[uint64]string{2: api.NodeUp, 3: api.NodeRemoved}, want: true, ids: "1 2", maxCalls: 1},
		{name: "an older build", states: map[uint64]string{2: api.NodeUp, 3: api.NodeUp}, answers: map[uint64]error{3: errors.New(`unknown method "v"`)}, maxCalls: 2},
		{name: "a level-0 answer", states: map[uint64]string{2: api.NodeUp, 3: api.NodeUp}, old: 2, maxCalls: 2},
		{name: "a removed node still holding replicas", states: map[uint64]string{2: api.NodeUp, 3: api.NodeRemoved}, removedHolds: true, maxCalls: 0},
		{name: "a node not up", states: map[uint64]string{2: api.NodeSuspect, 3: api.NodeUp}, maxCalls: 1},
		{name: "already there", level: api.Level, states: map[uint64]string{2: api.NodeUp}, maxCalls: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var calls atomic.Int64 // the calls run at once
			peers := &fakePeers{answer: func(node uint64, method string, _ []byte) ([]byte, error) {
				calls.Add(1)
				if method != MethodLevel {
					return nil, errors.New("unexpected method " + method)
				}
				if err := c.answers[node]; err != nil {
					return nil, err
				}
				if node == c.old {
					return codec.Encoder(nil).Uvarint(0), nil
				}
				return ServeLevel(), nil
			}}
			recs := []api.NodeRecord{{ID: 1, State: api.NodeUp}}
			for id := uint64(2); id <= 3; id++ {
				recs = append(recs, api.NodeRecord{ID: id, State: c.states[id]})
			}
			w := &metaWrites{reply: okReply}
			m := InitialMap(nil, testParts(2, 1, 2, 3), []uint64{1, 2, 3})
			m.Level = c.level
			p := NewPlacement(PlacementConfig{NodeID: 1, RequestTimeout: time.Second, Caller: peers, Write: w.write,
				Map: NewMap(MapConfig{Saved: func() ([]byte, bool) { return nil, false }}, m), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			holds := map[uint64]bool{1: true, 2: true, 3: c.removedHolds}
			p.maybeRaiseLevel(context.Background(), m, recs, holds)
			raised := len(w.got) == 1 && w.got[0] == statemachine.CmdClusterLevel+" "+strconv.Itoa(api.Level)+" "+c.ids
			if raised != c.want || len(w.got) > 1 {
				t.Fatalf("metadata writes %q, want raised %v", w.got, c.want)
			}
			if n := calls.Load(); n > int64(c.maxCalls) {
				t.Fatalf("%d calls, want at most %d", n, c.maxCalls)
			}
			// Asked again only after levelEvery.
			w.got = nil
			p.maybeRaiseLevel(context.Background(), m, recs, holds)
			if len(w.got) != 0 {
				t.Fatalf("asked again at once: %q", w.got)
			}
		})
	}
}

// Splits and merges are refused below their level, with a message that
// says what to do; a joining node older than the cluster is refused.
func TestLevelGates(t *testing.T) {
	m := InitialMap(map[uint64]string{1: "a:1"}, testParts(2, 1), []uint64{1})
	mp := NewMap(MapConfig{Saved: func() ([]byte, bool) { return nil, false }}, m)
	w := &metaWrites{reply: okReply}
	if _, err := SplitPartition(context.Background(), w.write, mp, 0, 0, true); !errors.Is(err, ErrLevel) || !strings.Contains(err.Error(), "finish the rolling upgrade") {
		t.Errorf("split at level 0: %v", err)
	}
	p := NewPlacement(PlacementConfig{NodeID: 1, Write: w.write, Map: mp, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if _, err := p.MergePartitions(context.Background(), 0); !errors.Is(err, ErrLevel) {
		t.Errorf("merge at level 0: %v", err)
	}
	if len(w.got) != 0 {
		t.Errorf("metadata writes below the level: %q", w.got)
	}

	m1 := InitialMap(map[uint64]string{1: "a:1"}, testParts(2, 1), []uint64{1})
	m1.Level = api.Level + 1
	mem := NewMembers(MembersConfig{
		Identity: api.Identity{ClusterID: "c1", NodeID: 1, Partitions: 2},
		Write:    w.write, Peers: &fakePeers{}, Map: NewMap(MapConfig{Saved: func() ([]byte, bool) { return nil, false }}, m1),
		Nodes: func() []api.NodeRecord { return m1.Nodes },
	})
	_, err := mem.ServeJoin(context.Background(), []byte(`{"id":4,"peer_addr":"d:1","level":1}`))
	if err == nil || !strings.Contains(err.Error(), "older than the cluster's level") {
		t.Errorf("an older build's join: %v", err)
	}
	if len(w.got) != 0 {
		t.Errorf("an older build's join reached the metadata: %q", w.got)
	}
}

// A member whose map is older than the cluster's level sends a join
// without the joining build's level; refused so by the metadata, it sends
// it again with the level.
func TestJoinThroughAStaleMapSaysTheLevel(t *testing.T) {
	m0 := InitialMap(map[uint64]string{1: "a:1"}, testParts(2, 1), []uint64{1})
	var got []string
	write := func(_ context.Context, _ uint64, args [][]byte) []byte {
		got = append(got, string(bytes.Join(args, []byte(" "))))
		if len(args) == 3 {
			return []byte("-ERR the cluster is at level 1 and " + statemachine.ErrJoinWithoutLevel + "\r\n")
		}
		return []byte(okReply)
	}
	mem := NewMembers(MembersConfig{
		Identity: api.Identity{ClusterID: "c1", NodeID: 1, Partitions: 2},
		Write:    write, Peers: &fakePeers{}, Map: NewMap(MapConfig{Saved: func() ([]byte, bool) { return nil, false }}, m0),
		Nodes: func() []api.NodeRecord { return m0.Nodes },
	})
	if _, err := mem.ServeJoin(context.Background(), []byte(`{"id":4,"peer_addr":"d:1","level":1}`)); err != nil {
		t.Fatal(err)
	}
	want := []string{statemachine.CmdNodeJoin + " 4 d:1", statemachine.CmdNodeJoin + " 4 d:1 1"}
	if !slices.Equal(got, want) {
		t.Fatalf("metadata writes %q, want %q", got, want)
	}
}

// The members are asked at once, not one after another: each call here
// answers only once every member's call has arrived, so asked in turn
// the first would wait for good (and the raise fail).
func TestLevelAskedOfEveryMemberAtOnce(t *testing.T) {
	const members = 12 // under levelFanOut
	arrived := make(chan struct{}, members)
	all := make(chan struct{})
	var once sync.Once
	peers := &fakePeers{answer: func(uint64, string, []byte) ([]byte, error) {
		arrived <- struct{}{}
		if len(arrived) == members-1 {
			once.Do(func() { close(all) })
		}
		select {
		case <-all:
			return ServeLevel(), nil
		case <-time.After(5 * time.Second):
			return nil, errors.New("the other members were not asked meanwhile")
		}
	}}
	recs := []api.NodeRecord{}
	for id := uint64(1); id <= members; id++ {
		recs = append(recs, api.NodeRecord{ID: id, State: api.NodeUp})
	}
	w := &metaWrites{reply: okReply}
	m := InitialMap(nil, testParts(2, 1, 2, 3), []uint64{1, 2, 3})
	m.Level = 0
	p := NewPlacement(PlacementConfig{NodeID: 1, RequestTimeout: time.Second, Caller: peers, Write: w.write,
		Map: NewMap(MapConfig{Saved: func() ([]byte, bool) { return nil, false }}, m), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	p.maybeRaiseLevel(context.Background(), m, recs, map[uint64]bool{})
	if len(w.got) != 1 || !strings.HasPrefix(w.got[0], statemachine.CmdClusterLevel+" "+strconv.Itoa(api.Level)+" ") {
		t.Fatalf("metadata writes %q, want the level raised", w.got)
	}
}
