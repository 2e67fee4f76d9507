package ring

import (
	"cmp"
	"math"
	"slices"
	"testing"
)

// refOrder is the dumb reference for the clockwise walk: for every node, a
// linear scan over all its tokens (recomputed from the hash, not taken from
// the sorted table) for the smallest clockwise distance from pos; nodes
// sorted by that distance, ties to the smaller ID.
func refOrder(nodes []Node, vnodes int, pos uint64) (ids []uint64, dists []uint64) {
	type nd struct{ id, dist uint64 }
	all := make([]nd, len(nodes))
	for i, n := range nodes {
		all[i] = nd{n.ID, math.MaxUint64}
		for v := range vnodes {
			all[i].dist = min(all[i].dist, tokenPos(n.ID, v)-pos)
		}
	}
	slices.SortFunc(all, func(a, b nd) int { return cmp.Or(cmp.Compare(a.dist, b.dist), cmp.Compare(a.id, b.id)) })
	for _, n := range all {
		ids = append(ids, n.id)
		dists = append(dists, n.dist)
	}
	return ids, dists
}

// refPrefer applies the zone rule to the reference order: the first node of
// each zone in walk order up to k zones, then the rest in walk order.
func refPrefer(nodes []Node, vnodes int, pos uint64, k int) []uint64 {
	zoneOf := make(map[uint64]string)
	zones := make(map[string]bool)
	for _, n := range nodes {
		zoneOf[n.ID] = n.Zone
		zones[n.Zone] = true
	}
	order, _ := refOrder(nodes, vnodes, pos)
	var out []uint64
	used := make(map[string]bool)
	for _, id := range order {
		if len(out) < min(k, len(zones)) && !used[zoneOf[id]] {
			used[zoneOf[id]] = true
			out = append(out, id)
		}
	}
	for _, id := range order {
		if len(out) < k && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func TestWalkMatchesLinearScan(t *testing.T) {
	rng := newRand(t)
	for range iterations(2000) {
		n, vnodes := 1+rng.IntN(30), 1+rng.IntN(8)
		nodes := randomNodes(rng, n, rng.IntN(5))
		rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
		r := newRing(nodes, vnodes)
		s := r.newScratch()
		tok := r.tokens[rng.IntN(len(r.tokens))].pos
		for _, pos := range []uint64{rng.Uint64(), 0, math.MaxUint64, tok, tok + 1, tok - 1, partitionPos(rng.IntN(64), 64)} {
			wantIDs, wantDists := refOrder(nodes, vnodes, pos)
			var gotIDs, gotDists []uint64
			for nd, d := range r.clockwise(pos, &s.walk) {
				gotIDs = append(gotIDs, r.ids[nd])
				gotDists = append(gotDists, d)
				if d != r.distance(pos, nd) {
					t.Fatalf("pos %#x: distance(%d) = %d, walk says %d", pos, r.ids[nd], r.distance(pos, nd), d)
				}
			}
			if !slices.Equal(gotIDs, wantIDs) || !slices.Equal(gotDists, wantDists) {
				t.Fatalf("pos %#x, %d nodes, V=%d:\nwalk %v %v\nref  %v %v", pos, n, vnodes, gotIDs, gotDists, wantIDs, wantDists)
			}
			k := 1 + rng.IntN(n)
			var got []uint64
			for _, pk := range r.prefer(pos, k, s, make([]pick, k)) {
				got = append(got, r.ids[pk.node])
			}
			if want := refPrefer(nodes, vnodes, pos, k); !slices.Equal(got, want) {
				t.Fatalf("pos %#x, k=%d: prefer %v, reference %v (nodes %+v)", pos, k, got, want, nodes)
			}
		}
	}
}

// TestWalkTies pins the tie rule on a hand-made table, since random 64-bit
// tokens practically never collide: equal positions go to the smaller ID,
// and a walk starting past the last token wraps to the first.
func TestWalkTies(t *testing.T) {
	r := &ring{
		ids:    []uint64{10, 20, 30},
		zone:   []int32{0, 0, 0},
		zones:  1,
		vnodes: 2,
		tokens: []token{{50, 2}, {100, 0}, {100, 1}, {200, 1}, {300, 0}, {300, 2}},
	}
	s := r.newScratch()
	for _, tc := range []struct {
		pos  uint64
		want []uint64
	}{
		{100, []uint64{10, 20, 30}},
		{101, []uint64{20, 10, 30}},
		{250, []uint64{10, 30, 20}},
		{301, []uint64{30, 10, 20}},
		{math.MaxUint64, []uint64{30, 10, 20}},
	} {
		var got []uint64
		for nd := range r.clockwise(tc.pos, &s.walk) {
			got = append(got, r.ids[nd])
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("walk from %d = %v, want %v", tc.pos, got, tc.want)
		}
	}
}

func TestMetaReplicas(t *testing.T) {
	rng := newRand(t)
	for range iterations(300) {
		n := 1 + rng.IntN(20)
		nodes := randomNodes(rng, n, rng.IntN(4))
		r := 1 + rng.IntN(7)
		cfg := Config{VNodes: 1 + rng.IntN(64)}
		got := MetaReplicas(cfg, nodes, r)
		if want := refPrefer(nodes, cfg.VNodes, namePos("kintsu-meta"), min(r, n)); !slices.Equal(got, want) {
			t.Fatalf("MetaReplicas = %v, reference %v", got, want)
		}
		shuffled := slices.Clone(nodes)
		rng.Shuffle(n, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		noisy := append(shuffled, Node{ID: 0}, shuffled[0])
		if again := MetaReplicas(cfg, noisy, r); !slices.Equal(again, got) {
			t.Fatalf("node order, a zero ID or a repeated ID changed the group: %v, then %v", got, again)
		}
		// Without zones the group is a plain walk: a node outside it
		// leaving changes nothing.
		plain := randomNodes(rng, n, 0)
		group := MetaReplicas(cfg, plain, r)
		for i, nd := range plain {
			if n > 1 && !slices.Contains(group, nd.ID) {
				if after := MetaReplicas(cfg, without(plain, i), r); !slices.Equal(after, group) {
					t.Fatalf("removing %d, not in the group, changed it: %v -> %v", nd.ID, group, after)
				}
				break
			}
		}
	}
	if got := MetaReplicas(Config{}, []Node{{ID: 1}}, 0); got != nil {
		t.Errorf("r=0: %v, want nil", got)
	}
	if got := MetaReplicas(Config{}, nil, 3); got != nil {
		t.Errorf("no nodes: %v, want nil", got)
	}
}
