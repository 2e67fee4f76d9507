package ring

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Node is a member of the cluster.
type Node struct {
	ID   uint64 // non-zero and unique within a membership
	Zone string // failure domain (rack, availability zone); "" is a zone like any other
}

// Placement assigns every partition its replicas.
type Placement struct {
	// Replicas[p] lists partition p's replica node IDs in preference
	// order; Replicas[p][0] is the preferred leader.
	// Invariant: every list holds min(R, N) distinct IDs.
	Replicas [][]uint64
}

// Place computes the placement of every partition for the membership nodes.
//
// It is a pure function of (cfg, the set of nodes): the order of nodes does
// not matter, so every node that knows the membership computes the same
// placement without talking to the others. With fewer than R nodes every
// partition is placed on all of them. Zero fields of cfg take their defaults.
// It fails on an invalid cfg, an empty membership, a zero ID or a duplicate
// ID, reporting every problem at once.
//
// How (see doc.go for the guarantees):
//  1. Each partition's preference list is walked from its arc's start: the
//     first node of each zone clockwise, then the other nodes clockwise.
//  2. Bounded loads: every node above the cap ceil((1+ε)·P·R/N) gives up
//     exactly its excess, the replicas it has the weakest claim on, and each
//     lands on the next node of that partition's walk with room, a missing
//     zone first. No other replica moves (save a rare swap when every node
//     outside the partition is full): this is the fewest changes to the
//     lists that respect the cap.
//  3. Leaders: the first replica leads, unless its node already leads
//     ceil((1+ε)·P/N) partitions; then the next replica with room does, or
//     a chain of partitions passes leadership along to make room.
func Place(cfg Config, nodes []Node) (Placement, error) {
	pl, _, err := place(cfg, nodes, nil)
	return pl, err
}

// PlaceAt is Place for partitions of any sizes: partition p's walk starts
// at starts[p] (SlotPos of its range's first slot, or its FamilyPos), and
// cfg.Partitions is not used. Place is PlaceAt with the equal ranges'
// starts. Because a partition's list depends only on its own start and
// the membership, a partition that splits keeps its list, and the new
// right half gets the list of its own start (with FamilyPos, its
// parent's): only the cap's corrections can move others.
func PlaceAt(cfg Config, nodes []Node, starts []uint64) (Placement, error) {
	if len(starts) == 0 {
		return Placement{}, ErrNoPartitions
	}
	pl, _, err := place(cfg, nodes, starts)
	return pl, err
}

// SlotPos is where the walk of a partition whose range starts at slot
// begins on the 64-bit ring (16384 = 2^14, so slot s sits at s<<50).
func SlotPos(slot uint16) uint64 { return uint64(slot) << 50 }

// familyShift scales a slot's offset within its family (FamilyPos): a
// family's walks span at most 2^14 << 20 = 2^34 of the 2^64 ring, so that
// among N·V tokens the chance that one falls inside a given family's arc
// is N·V/2^30 (6·10^-5 for 1,000 nodes of 64 tokens).
const familyShift = 20

// FamilyPos is where the walk of a partition whose range starts at slot
// begins when its cluster was created with initial equal partitions: at
// the start of the initial partition holding slot (its family: that
// partition and every piece split from it), plus the slot's offset
// within it scaled down by 2^familyShift. Every member of a family so
// walks the same tokens and prefers the same nodes, and a split's right
// half is placed where its parent is: splits move no replica unless the
// load cap needs one. The offsets keep the members' distances to each
// token distinct and ordered by slot, so the cap sheds the same members
// whichever others exist. An initial partition's own FamilyPos is its
// SlotPos. An initial count Config.Validate refuses places by SlotPos.
func FamilyPos(slot uint16, initial int) uint64 {
	if initial < 1 || initial > SlotCount || SlotCount%initial != 0 {
		return SlotPos(slot) // no families to speak of
	}
	width := SlotCount / initial
	first := slot - slot%uint16(width)
	return SlotPos(first) + uint64(slot-first)<<familyShift
}

// stats says how far a placement strays from the plain preference lists,
// which is what its movement bounds are stated in.
type stats struct {
	corrections int // replicas moved off their preference list by the cap
	swaps       int // corrections that also moved a replica of another partition
}

// place places the partitions starting at starts; nil starts means
// cfg.Partitions equal ranges.
func place(cfg Config, nodes []Node, starts []uint64) (Placement, stats, error) {
	cfg.EnsureDefaults()
	errs := cfg.shapeProblems()
	if starts == nil {
		errs = append(errs, cfg.partitionProblems()...)
	}
	if errs := append(errs, membershipProblems(nodes)...); len(errs) > 0 {
		return Placement{}, stats{}, errors.Join(errs...)
	}
	if starts == nil {
		starts = equalStarts(cfg.Partitions)
	}
	r := newRing(nodes, cfg.VNodes)
	lists := r.preferenceLists(starts, min(cfg.Replicas, len(r.ids)))
	var st stats
	st.corrections, st.swaps = r.boundLoads(lists, starts, cfg.Epsilon)
	r.balanceLeaders(lists, cfg.Epsilon)
	return r.placement(lists), st, nil
}

func membershipProblems(nodes []Node) []error {
	if len(nodes) == 0 {
		return []error{ErrNoNodes}
	}
	ids := make([]uint64, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	slices.Sort(ids)
	var errs []error
	if ids[0] == 0 {
		errs = append(errs, ErrZeroID)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] != 0 && ids[i] == ids[i-1] && (i == 1 || ids[i] != ids[i-2]) {
			errs = append(errs, fmt.Errorf("%w: %d", ErrDuplicateID, ids[i]))
		}
	}
	return errs
}

// equalStarts are the starts of partitions equal ranges.
func equalStarts(partitions int) []uint64 {
	starts := make([]uint64, partitions)
	for p := range starts {
		starts[p] = partitionPos(p, partitions)
	}
	return starts
}

// preferenceLists returns the uncapped preference list of every partition.
func (r *ring) preferenceLists(starts []uint64, replicas int) [][]pick {
	s := r.newScratch()
	buf := make([]pick, len(starts)*replicas)
	lists := make([][]pick, len(starts))
	at := 0 // the first token at or after the previous start
	for p, pos := range starts {
		if p > 0 && pos >= starts[p-1] {
			// Starts usually ascend: walk on from the last one instead
			// of searching afresh (the search was half a large
			// placement's time).
			for at < len(r.tokens) && r.tokens[at].pos < pos {
				at++
			}
		} else {
			at = r.search(pos)
		}
		lists[p] = r.preferAt(at, pos, replicas, s, buf[p*replicas:(p+1)*replicas:(p+1)*replicas])
	}
	return lists
}

// claim is replica j of partition p, held with the given strength.
type claim struct {
	p, j int
	dist uint64
}

// excess lists, for every node whose count of claims among the first slots
// of each list exceeds limit, the claims it must give up: its weakest, the
// partitions whose start is farthest from its token. Weakest first because those are the replicas the node is least
// likely to keep as the membership changes (a node joining between the
// partition's start and the token takes them), and because measuring by
// distance, unlike by rank in the list, does not depend on the other nodes.
// count is lowered to limit; the result is sorted by partition.
func excess(lists [][]pick, slots int, count []int, limit int) []claim {
	if slices.Max(count) <= limit {
		return nil
	}
	byNode := make([][]claim, len(count))
	for p, l := range lists {
		for j := range slots {
			if n := l[j].node; count[n] > limit {
				byNode[n] = append(byNode[n], claim{p, j, l[j].dist})
			}
		}
	}
	var out []claim
	for n, cl := range byNode {
		if len(cl) == 0 {
			continue
		}
		slices.SortFunc(cl, func(a, b claim) int {
			return cmp.Or(cmp.Compare(b.dist, a.dist), cmp.Compare(a.p, b.p))
		})
		out = append(out, cl[:count[n]-limit]...)
		count[n] = limit
	}
	slices.SortFunc(out, func(a, b claim) int {
		return cmp.Or(cmp.Compare(a.p, b.p), cmp.Compare(a.j, b.j))
	})
	return out
}

// boundLoads enforces the cap on every node with the fewest changes to the
// preference lists, returning how many replicas it moved and how many of
// those needed a swap.
//
// Why not the textbook walk that skips full nodes partition by partition:
// there a skip changes which nodes fill up next, so one overloaded node
// reshuffles partitions that never touched it, and a membership change
// moves replicas far from the node that joined or left. Here the placement
// differs from the plain lists in exactly the corrected replicas, so a
// membership change moves, beyond the joining or leaving node's own
// replicas, at most the corrections made before and after it.
func (r *ring) boundLoads(lists [][]pick, starts []uint64, eps float64) (corrections, swaps int) {
	partitions, n := len(lists), len(r.ids)
	limit := capacity(partitions, len(lists[0]), n, eps)
	load := make([]int, n)
	for _, l := range lists {
		for _, pk := range l {
			load[pk.node]++
		}
	}
	shed := excess(lists, len(lists[0]), load, limit)
	// Vacate every shed replica before landing any, so that a swap never
	// routes through a replica that is about to leave.
	for _, e := range shed {
		lists[e.p][e.j].node = -1
	}
	s := r.newScratch()
	for _, e := range shed {
		if !r.land(lists[e.p], e.j, starts[e.p], load, limit, s) {
			r.swapIn(lists, starts, e.p, e.j, load, limit)
			swaps++
		}
	}
	return len(shed), swaps
}

// land fills the vacant slot j of a partition's list with the first node
// clockwise from pos that has room and is not yet a replica, preferring a
// zone the partition lacks, as prefer does.
func (r *ring) land(l []pick, j int, pos uint64, load []int, limit int, s *scratch) bool {
	s.picked.reset()
	s.zones.reset()
	used := 0
	for _, pk := range l {
		if pk.node < 0 {
			continue
		}
		s.picked.add(pk.node)
		if z := r.zone[pk.node]; !s.zones.has(z) {
			s.zones.add(z)
			used++
		}
	}
	for _, spread := range [2]bool{true, false} {
		if spread && used == r.zones {
			continue
		}
		for n, d := range r.clockwise(pos, &s.walk) {
			if load[n] >= limit || s.picked.has(n) || spread && s.zones.has(r.zone[n]) {
				continue
			}
			l[j] = pick{n, d}
			load[n]++
			return true
		}
	}
	return false
}

// swapIn fills vacant slot j of partition p when every node outside p is
// full. Fewer than P·R replicas are placed and the caps hold at least P·R,
// so some node b has room, and it is in p. Take any full node a outside p: some partition q holds a but not
// b, for if every holder of a also held b, b (which p holds too) would hold
// more than a, a full node. q gets b instead of a and p gets a.
func (r *ring) swapIn(lists [][]pick, starts []uint64, p, j int, load []int, limit int) {
	for b := range int32(len(r.ids)) {
		if load[b] >= limit {
			continue
		}
		for a := range int32(len(r.ids)) {
			if load[a] < limit || holds(lists[p], a) {
				continue
			}
			for q, l := range lists {
				ja := slices.IndexFunc(l, func(pk pick) bool { return pk.node == a })
				if ja < 0 || holds(l, b) {
					continue
				}
				l[ja] = pick{b, r.distance(starts[q], b)}
				lists[p][j] = pick{a, r.distance(starts[p], a)}
				load[b]++
				return
			}
		}
	}
	panic("ring: no replica swap exists; the load cap is below P·R/N")
}

func holds(l []pick, n int32) bool {
	return slices.ContainsFunc(l, func(pk pick) bool { return pk.node == n })
}

// balanceLeaders moves each partition's leader to the front of its list,
// keeping the rest in preference order. The first replica leads unless its
// node is above the leader cap ceil((1+ε)·P/N); then the node gives up its
// weakest leaderships, and each of those partitions takes the next replica
// with room or, failing that, a chain of partitions passes leadership along
// to make room. This is augmenting-path matching (Kuhn), and a leader within
// the cap always exists (Hall): any set Q of partitions has R·|Q| replicas on
// the set T of nodes they use, at most |T|·cap of them, and cap <= R·(leader
// cap), so |Q| <= |T|·(leader cap).
func (r *ring) balanceLeaders(lists [][]pick, eps float64) {
	partitions, n := len(lists), len(r.ids)
	if len(lists[0]) == 1 {
		return // the only replica leads; the replica cap already bounds it
	}
	limit := capacity(partitions, 1, n, eps)
	leads := make([]int, n)
	for _, l := range lists {
		leads[l[0].node]++
	}
	c := chain{at: make([]int, partitions)} // the first replica leads
	for _, e := range excess(lists, 1, leads, limit) {
		c.at[e.p] = -1
	}
	for p, k := range c.at {
		if k < 0 && !c.relead(lists, p, leads, limit) {
			panic("ring: no leader within the cap; the replica cap exceeds R times the leader cap")
		}
	}
	for p, k := range c.at {
		lead(lists[p], k)
	}
}

// chain searches, breadth-first, for an augmenting path: partition p takes
// replica b1 as leader; if b1 is full, a partition b1 leads takes one of its
// other replicas b2 instead, and so on until a node with room. Breadth-first
// finds the shortest chain, which changes the fewest leaders.
type chain struct {
	at    []int // index in its list of each partition's leader; -1: none yet
	via   []hop // how each node was reached
	seen  marks
	queue []int32
}

// hop: partition q makes its replica k the leader; prev is the node that
// led q before (-1 for the partition the search started from).
type hop struct {
	q, k int
	prev int32
}

func (c *chain) relead(lists [][]pick, p int, leads []int, limit int) bool {
	if c.via == nil {
		c.via = make([]hop, len(leads))
		c.seen = newMarks(len(leads))
	}
	c.seen.reset()
	c.queue = c.queue[:0]
	reach := func(q int, prev int32) bool {
		for k, pk := range lists[q] {
			b := pk.node
			if k == c.at[q] || c.seen.has(b) {
				continue
			}
			c.seen.add(b)
			c.via[b] = hop{q, k, prev}
			if leads[b] < limit {
				c.apply(b)
				leads[b]++
				return true
			}
			c.queue = append(c.queue, b)
		}
		return false
	}
	if reach(p, -1) {
		return true
	}
	for i := 0; i < len(c.queue); i++ {
		a := c.queue[i]
		for q, l := range lists {
			if k := c.at[q]; k >= 0 && l[k].node == a && reach(q, a) {
				return true
			}
		}
	}
	return false
}

// apply walks the chain back from its last node b, re-leading each
// partition on it. Each intermediate node gains one leadership and gives up
// another, so only b's count changes.
func (c *chain) apply(b int32) {
	for {
		h := c.via[b]
		c.at[h.q] = h.k
		if h.prev < 0 {
			return
		}
		b = h.prev
	}
}

// lead moves l[k] to the front, keeping the others in order.
func lead(l []pick, k int) {
	if k == 0 {
		return
	}
	pk := l[k]
	copy(l[1:k+1], l[:k])
	l[0] = pk
}

func (r *ring) placement(lists [][]pick) Placement {
	replicas := len(lists[0])
	buf := make([]uint64, len(lists)*replicas)
	pl := Placement{Replicas: make([][]uint64, len(lists))}
	for p, l := range lists {
		ids := buf[p*replicas : (p+1)*replicas : (p+1)*replicas]
		for j, pk := range l {
			ids[j] = r.ids[pk.node]
		}
		pl.Replicas[p] = ids
	}
	return pl
}

// Load returns how many replicas each node holds. Nodes holding none are
// absent.
func (p Placement) Load() map[uint64]int {
	m := make(map[uint64]int)
	for _, ids := range p.Replicas {
		for _, id := range ids {
			m[id]++
		}
	}
	return m
}

// Moves counts the replicas that must be created to go from one placement to
// the other: for each partition, the node IDs in to that are not in from.
// A replica added anywhere is one move (a snapshot to ship); replicas only
// dropped, or reordered, cost nothing. Partitions missing from from count in
// full.
func Moves(from, to Placement) int {
	moves := 0
	for p, ids := range to.Replicas {
		var old []uint64
		if p < len(from.Replicas) {
			old = from.Replicas[p]
		}
		for _, id := range ids {
			if !slices.Contains(old, id) {
				moves++
			}
		}
	}
	return moves
}

// metaName fixes the ring position of the cluster-metadata group.
const metaName = "kintsu-meta"

// MetaReplicas returns the nodes of the cluster-metadata group: the first
// min(r, N) distinct nodes clockwise from the ring position of "kintsu-meta",
// one per zone first, as for partitions. Loads are not bounded: the group is
// one among many. It is deterministic and, like the partitions' lists, moves
// only when a node in it leaves or a node joins ahead of one of them. A
// repeated ID counts once (with its smallest zone) and zero IDs are ignored,
// since there is no error to report them through; Place rejects both. It
// returns nil if r < 1 or no node remains.
func MetaReplicas(cfg Config, nodes []Node, r int) []uint64 {
	cfg.EnsureDefaults()
	if cfg.VNodes < 1 {
		cfg.VNodes = DefaultVNodes
	}
	members := slices.Clone(nodes)
	slices.SortFunc(members, func(a, b Node) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Zone, b.Zone))
	})
	members = slices.CompactFunc(members, func(a, b Node) bool { return a.ID == b.ID })
	if len(members) > 0 && members[0].ID == 0 {
		members = members[1:]
	}
	if r < 1 || len(members) == 0 {
		return nil
	}
	rg := newRing(members, cfg.VNodes)
	k := min(r, len(members))
	picks := rg.prefer(namePos(metaName), k, rg.newScratch(), make([]pick, k))
	ids := make([]uint64, k)
	for i, pk := range picks {
		ids[i] = rg.ids[pk.node]
	}
	return ids
}
