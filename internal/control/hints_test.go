package control

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/route"
	"github.com/kintsu/kintsu/internal/statemachine"
)

type hintsEngine struct {
	leaders   map[uint64]uint64
	hosted    map[uint64]bool
	destroyed []string
}

func (e *hintsEngine) Leader(group uint64) uint64 { return e.leaders[group] }
func (e *hintsEngine) HasGroup(group uint64) bool { return e.hosted[group] }
func (e *hintsEngine) DestroyIfRemoved(group, nextID uint64, ids []uint64) {
	e.destroyed = append(e.destroyed, fmt.Sprintf("group %d next %d ids %v", group, nextID, ids))
}

// One round: a group whose local replica knows its leader is skipped;
// for the others, peers are asked in turn (never this node) until one
// names a leader, and a local replica that knows no leader asks that
// leader whether it is still a member.
func TestHintsRound(t *testing.T) {
	eng := &hintsEngine{leaders: map[uint64]uint64{statemachine.MetaGroup: 1}, hosted: map[uint64]bool{1: true}}
	var asked []string
	peers := &fakePeers{answer: func(node uint64, method string, body []byte) ([]byte, error) {
		d := codec.NewDecoder(body)
		g := d.Uvarint()
		asked = append(asked, fmt.Sprintf("%s %d to %d", method, g, node))
		switch {
		case method == route.MethodLeader && g == 0 && node == 2:
			return codec.Encoder(nil).Uvarint(3), nil
		case method == route.MethodLeader && g == 1 && node == 3:
			return codec.Encoder(nil).Uvarint(2), nil
		case method == MethodGroupInfo && g == 1 && node == 2:
			return mustMarshal(groupInfoJSON{Leader: 2, NextID: 7, IDs: []uint64{1, 2}}), nil
		}
		return nil, errors.New("unreachable")
	}}
	hints := map[uint64]uint64{}
	h := NewHints(HintsConfig{
		NodeID: 1, Engine: eng, Caller: peers,
		GroupNodes: func(g uint64) []uint64 {
			if g == 0 {
				return []uint64{1, 2}
			}
			return []uint64{2, 3}
		},
		SetHint: func(g, node uint64) { hints[g] = node },
		Map:     NewMap(MapConfig{Saved: func() ([]byte, bool) { return nil, false }}, InitialMap(nil, testParts(2, 1, 2, 3), []uint64{1, 2, 3})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // one round, then Run returns
	h.Run(ctx)
	want := []string{
		route.MethodLeader + " 0 to 2",
		route.MethodLeader + " 1 to 2", route.MethodLeader + " 1 to 3", MethodGroupInfo + " 1 to 2",
	}
	if !slices.Equal(asked, want) {
		t.Errorf("asked %q, want %q", asked, want)
	}
	if len(hints) != 2 || hints[0] != 3 || hints[1] != 2 {
		t.Errorf("hints %v", hints)
	}
	if !slices.Equal(eng.destroyed, []string{"group 1 next 7 ids [1 2]"}) {
		t.Errorf("destroy checks %q", eng.destroyed)
	}
}

// A peer that does not answer (paused, cut off) is asked once per round,
// not once per group, so the round stays short and the answers of the
// peers that do answer stay fresh for readiness. A local learner's leader
// is asked about though the learner knows one: it would never forget it.
func TestHintsRoundSkipsSilentPeers(t *testing.T) {
	eng := &hintsEngine{leaders: map[uint64]uint64{0: 3, 1: 3}, hosted: map[uint64]bool{0: true, 1: true}}
	var asked []string
	peers := &fakePeers{answer: func(node uint64, method string, body []byte) ([]byte, error) {
		d := codec.NewDecoder(body)
		g := d.Uvarint()
		asked = append(asked, fmt.Sprintf("%d to %d", g, node))
		if node == 2 {
			return nil, context.DeadlineExceeded // a frozen peer: the call times out
		}
		return codec.Encoder(nil).Uvarint(3), nil
	}}
	confirmed := map[uint64]uint64{}
	h := NewHints(HintsConfig{
		NodeID: 1, Engine: eng, Caller: peers,
		GroupNodes: func(uint64) []uint64 { return []uint64{2, 3} },
		SetHint:    func(g, node uint64) { confirmed[g] = node },
		Learner:    func(g uint64) bool { return g == 0 },
		Map:        NewMap(MapConfig{Saved: func() ([]byte, bool) { return nil, false }}, InitialMap(nil, testParts(4, 2, 3, 1), []uint64{2, 3, 1})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.Run(ctx)
	want := []string{fmt.Sprint(statemachine.MetaGroup, " to 2"), fmt.Sprint(statemachine.MetaGroup, " to 3"), "0 to 3", "2 to 3", "3 to 3"}
	if !slices.Equal(asked, want) {
		t.Errorf("asked %q, want %q", asked, want)
	}
	if len(confirmed) != 4 || confirmed[1] != 0 {
		t.Errorf("confirmed %v, want every group but 1 led by 3", confirmed)
	}
	if len(eng.destroyed) != 0 {
		t.Errorf("a learner that knows its leader was checked for removal: %q", eng.destroyed)
	}
}
