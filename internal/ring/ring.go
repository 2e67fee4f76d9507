package ring

import (
	"cmp"
	"iter"
	"slices"
)

// mix64 is the splitmix64 finaliser. FNV-1a alone barely diffuses the last
// bytes it absorbs, and token indexes differ only there; the finaliser
// spreads every input bit over the whole word, so tokens land uniformly.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnvWord absorbs the 8 little-endian bytes of v into an FNV-1a state. The
// hash is spelled out rather than taken from hash/fnv so that its definition,
// which every node of every version must agree on, is visible here.
func fnvWord(h, v uint64) uint64 {
	for range 8 {
		h ^= v & 0xff
		h *= fnvPrime
		v >>= 8
	}
	return h
}

// tokenPos is the ring position of token i of node id. It depends on nothing
// else, so a node's tokens stay put whatever the rest of the membership does;
// that is what confines movement to the arcs a joining or leaving node owns.
func tokenPos(id uint64, i int) uint64 {
	return mix64(fnvWord(fnvWord(fnvOffset, id), uint64(i)))
}

// namePos is the ring position of a fixed name such as the metadata group's.
func namePos(name string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= fnvPrime
	}
	return mix64(h)
}

// partitionPos is where partition p's walk starts: the first slot of its arc
// scaled onto the 64-bit ring (16384 = 2^14, so slot s sits at s<<50).
// Hashing the partition instead would add a second source of randomness:
// evenly spaced starts keep each partition's position tied to the keys it
// owns and take one term out of the load variance.
func partitionPos(p, partitions int) uint64 {
	return uint64(p*(SlotCount/partitions)) << 50
}

type token struct {
	pos  uint64
	node int32 // index into ring.ids
}

// ring is the token table of one membership. Nodes are numbered by their
// index in ids, which is sorted, so every derived order is independent of
// the order in which the caller listed the nodes.
type ring struct {
	ids    []uint64 // node IDs, ascending
	zone   []int32  // zone number of each node
	zones  int      // number of distinct zones
	vnodes int
	tokens []token // ascending by (pos, node)
}

// newRing builds the token table. nodes must have distinct IDs.
func newRing(nodes []Node, vnodes int) *ring {
	ns := slices.Clone(nodes)
	slices.SortFunc(ns, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	names := make([]string, len(ns))
	for i, n := range ns {
		names[i] = n.Zone
	}
	slices.Sort(names)
	names = slices.Compact(names)

	r := &ring{
		ids:    make([]uint64, len(ns)),
		zone:   make([]int32, len(ns)),
		zones:  len(names),
		vnodes: vnodes,
		tokens: make([]token, 0, len(ns)*vnodes),
	}
	for i, n := range ns {
		r.ids[i] = n.ID
		z, _ := slices.BinarySearch(names, n.Zone)
		r.zone[i] = int32(z)
		for v := range vnodes {
			r.tokens = append(r.tokens, token{tokenPos(n.ID, v), int32(i)})
		}
	}
	// Ties (two tokens on one position) go to the smaller node ID, so the
	// walk stays a function of the membership alone.
	slices.SortFunc(r.tokens, func(a, b token) int {
		if a.pos != b.pos {
			return cmp.Compare(a.pos, b.pos)
		}
		return cmp.Compare(a.node, b.node)
	})
	return r
}

// marks is a set of small integers that empties in O(1), so one allocation
// serves every walk of a placement.
type marks struct {
	gen uint32
	at  []uint32
}

func newMarks(n int) marks { return marks{gen: 1, at: make([]uint32, n)} }

func (m *marks) reset() {
	m.gen++
	if m.gen == 0 { // wrapped: stale stamps could alias the new generation
		clear(m.at)
		m.gen = 1
	}
}

func (m *marks) has(i int32) bool { return m.at[i] == m.gen }
func (m *marks) add(i int32)      { m.at[i] = m.gen }

// clockwise yields every node once, in the order of its first token at or
// after pos going clockwise (wrapping past 2^64-1), with the clockwise
// distance from pos to that token. seen is scratch space owned by the
// iteration.
func (r *ring) clockwise(pos uint64, seen *marks) iter.Seq2[int32, uint64] {
	return r.clockwiseAt(r.search(pos), pos, seen)
}

// search is the index of the first token at or after pos (len(tokens):
// none, the walk wraps to the first).
func (r *ring) search(pos uint64) int {
	i, _ := slices.BinarySearchFunc(r.tokens, pos, func(t token, p uint64) int {
		return cmp.Compare(t.pos, p)
	})
	return i
}

// clockwiseAt is clockwise with pos's token index already found.
func (r *ring) clockwiseAt(start int, pos uint64, seen *marks) iter.Seq2[int32, uint64] {
	return func(yield func(int32, uint64) bool) {
		seen.reset()
		left := len(r.ids)
		for k := range r.tokens {
			t := r.tokens[(start+k)%len(r.tokens)]
			if seen.has(t.node) {
				continue
			}
			seen.add(t.node)
			if !yield(t.node, t.pos-pos) {
				return
			}
			if left--; left == 0 {
				return
			}
		}
	}
}

// distance is the clockwise distance from pos to node n's first token, the
// same value clockwise yields for n, computed from n's tokens alone.
func (r *ring) distance(pos uint64, n int32) uint64 {
	d := uint64(1<<64 - 1)
	for v := range r.vnodes {
		d = min(d, tokenPos(r.ids[n], v)-pos)
	}
	return d
}

// pick is one replica of a partition: the node and the clockwise distance
// from the partition's position to the node's first token, the strength of
// the node's claim on the partition.
type pick struct {
	node int32
	dist uint64
}

// scratch is the reusable working memory of one placement.
type scratch struct {
	walk, picked marks // node sets
	zones        marks // zone set
}

func (r *ring) newScratch() *scratch {
	return &scratch{walk: newMarks(len(r.ids)), picked: newMarks(len(r.ids)), zones: newMarks(r.zones)}
}

// prefer returns, in buf's storage, the preference list of length k starting
// at pos: the first node of each zone, in clockwise order, up to k of them,
// then the remaining nodes in clockwise order. With a single zone (no zones
// given) this is exactly the first k distinct nodes clockwise. Removing a
// node changes only the lists that contained it, and those by just that
// node: a zone's first node changes only if it is the one removed.
func (r *ring) prefer(pos uint64, k int, s *scratch, buf []pick) []pick {
	return r.preferAt(r.search(pos), pos, k, s, buf)
}

// preferAt is prefer with pos's token index already found.
func (r *ring) preferAt(start int, pos uint64, k int, s *scratch, buf []pick) []pick {
	out := buf[:0]
	s.picked.reset()
	s.zones.reset()
	spread := min(k, r.zones)
	for n, d := range r.clockwiseAt(start, pos, &s.walk) {
		if len(out) == spread {
			break
		}
		if !s.zones.has(r.zone[n]) {
			s.zones.add(r.zone[n])
			s.picked.add(n)
			out = append(out, pick{n, d})
		}
	}
	if len(out) < k {
		for n, d := range r.clockwiseAt(start, pos, &s.walk) {
			if !s.picked.has(n) {
				out = append(out, pick{n, d})
				if len(out) == k {
					break
				}
			}
		}
	}
	return out
}
