package raftlog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/kintsu/kintsu/internal/dst/simfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// modelGroup is what a group's log must look like: the obvious thing.
type modelGroup struct {
	hs     hardState
	ci, ct uint64
	ents   []*pb.Entry // (ci, last]
}

func (g *modelGroup) last() uint64 { return g.ci + uint64(len(g.ents)) }

func (g *modelGroup) term(i uint64) uint64 {
	if i == g.ci {
		return g.ct
	}
	return g.ents[i-g.ci-1].GetTerm()
}

type model map[uint64]*modelGroup

func (m model) clone() model {
	out := model{}
	for id, g := range m {
		c := *g
		c.ents = slices.Clone(g.ents)
		out[id] = &c
	}
	return out
}

func (m model) get(id uint64) *modelGroup {
	if m[id] == nil {
		m[id] = &modelGroup{}
	}
	return m[id]
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func ent(i, t uint64, data []byte) *pb.Entry {
	return &pb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(t), Type: pb.EntryType_EntryNormal.Enum(), Data: data}
}

// gen builds random batches and applies them to a model.
type gen struct {
	rng    *rand.Rand
	term   uint64
	groups int
}

func (g *gen) data() []byte {
	n := g.rng.IntN(120)
	if g.rng.IntN(20) == 0 {
		n = 1<<10 + g.rng.IntN(3<<10)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	return b
}

// batch returns a random valid batch and the model after it.
func (g *gen) batch(m model) (*Batch, model) {
	next := m.clone()
	b := &Batch{}
	for range 1 + g.rng.IntN(6) {
		id := uint64(1 + g.rng.IntN(g.groups))
		mg := next[id]
		if mg == nil {
			// A no-op compaction of an unknown group records nothing and
			// creates nothing; every other op creates the group.
			mg = &modelGroup{}
		}
		switch p := g.rng.IntN(100); {
		case p < 55: // append, sometimes replacing a suffix
			first := mg.last() + 1
			if mg.last() > mg.ci && g.rng.IntN(4) == 0 {
				first = mg.ci + 1 + g.rng.Uint64N(mg.last()-mg.ci)
			}
			if g.rng.IntN(5) == 0 {
				g.term++
			}
			t := max(g.term, mg.term(first-1))
			var es []*pb.Entry
			for k := range 1 + g.rng.IntN(12) {
				es = append(es, ent(first+uint64(k), t, g.data()))
			}
			b.Append(id, es)
			mg.ents = append(mg.ents[:first-mg.ci-1], es...)
			next[id] = mg
		case p < 70:
			hs := hardState{g.term, g.rng.Uint64N(5), g.rng.Uint64N(mg.last() + 1)}
			b.SetHardState(id, &pb.HardState{Term: proto.Uint64(hs.term), Vote: proto.Uint64(hs.vote), Commit: proto.Uint64(hs.commit)})
			mg.hs = hs
			next[id] = mg
		case p < 88:
			idx := mg.ci
			if mg.last() > mg.ci {
				idx = mg.ci + g.rng.Uint64N(mg.last()-mg.ci+1)
			}
			b.Compact(id, idx)
			if idx > mg.ci {
				mg.ct = mg.term(idx)
				mg.ents = mg.ents[idx-mg.ci:]
				mg.ci = idx
			}
		case p < 95:
			g.term++
			idx := mg.last() + g.rng.Uint64N(20)
			b.Reset(id, idx, g.term)
			*mg = modelGroup{hs: mg.hs, ci: idx, ct: g.term}
			next[id] = mg
		default:
			b.Drop(id)
			delete(next, id)
		}
	}
	return b, next
}

// check compares everything raft can ask of l with m.
func check(t *testing.T, l *Log, m model, rng *rand.Rand, ctx string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s: %s", ctx, fmt.Sprintf(format, args...))
	}
	want := slices.Sorted(func(yield func(uint64) bool) {
		for id := range m {
			if !yield(id) {
				return
			}
		}
	})
	if got := l.Groups(); !slices.Equal(got, want) {
		fail("groups %v, want %v", got, want)
	}
	for _, id := range append(want, 1000) { // 1000: a group never seen
		g := m[id]
		if g == nil {
			g = &modelGroup{}
		}
		hs, err := l.HardState(id)
		if err != nil || (hardState{hs.GetTerm(), hs.GetVote(), hs.GetCommit()}) != g.hs {
			fail("group %d hard state %v %v, want %+v", id, hs, err, g.hs)
		}
		if fi, _ := l.FirstIndex(id); fi != g.ci+1 {
			fail("group %d first index %d, want %d", id, fi, g.ci+1)
		}
		if li, _ := l.LastIndex(id); li != g.last() {
			fail("group %d last index %d, want %d", id, li, g.last())
		}
		if g.ci > 0 {
			if _, err := l.Term(id, g.ci-1); !errors.Is(err, raft.ErrCompacted) {
				fail("group %d Term below first: %v", id, err)
			}
			if _, err := l.Entries(id, g.ci, g.last()+1, math.MaxUint64); !errors.Is(err, raft.ErrCompacted) {
				fail("group %d Entries at compacted: %v", id, err)
			}
		}
		if _, err := l.Term(id, g.last()+1); !errors.Is(err, raft.ErrUnavailable) {
			fail("group %d Term past last: %v", id, err)
		}
		if _, err := l.Entries(id, g.ci+1, g.last()+2, math.MaxUint64); !errors.Is(err, raft.ErrUnavailable) {
			fail("group %d Entries past last: %v", id, err)
		}
		for i := g.ci; i <= g.last(); i++ {
			if tm, err := l.Term(id, i); err != nil || tm != g.term(i) {
				fail("group %d Term(%d) = %d, %v; want %d", id, i, tm, err, g.term(i))
			}
		}
		if len(g.ents) == 0 {
			continue
		}
		es, err := l.Entries(id, g.ci+1, g.last()+1, math.MaxUint64)
		if err != nil || !entsEqual(es, g.ents) {
			fail("group %d all entries: %d entries, %v; want %d", id, len(es), err, len(g.ents))
		}
		for range 3 {
			lo := g.ci + 1 + rng.Uint64N(uint64(len(g.ents)))
			hi := lo + 1 + rng.Uint64N(g.last()-lo+1)
			maxSize := rng.Uint64N(2000)
			es, err := l.Entries(id, lo, hi, maxSize)
			wantEs := limit(g.ents[lo-g.ci-1:hi-g.ci-1], maxSize)
			if err != nil || !entsEqual(es, wantEs) {
				fail("group %d Entries(%d, %d, %d): %d entries, %v; want %d", id, lo, hi, maxSize, len(es), err, len(wantEs))
			}
		}
	}
	checkIndex(t, l, ctx)
}

// limit is raft's maxSize rule: the longest prefix within maxSize bytes,
// but at least one entry.
func limit(es []*pb.Entry, maxSize uint64) []*pb.Entry {
	size := uint64(0)
	for i, e := range es {
		size += uint64(proto.Size(e))
		if i > 0 && size > maxSize {
			return es[:i]
		}
	}
	return es
}

func entsEqual(a, b []*pb.Entry) bool {
	return slices.EqualFunc(a, b, func(x, y *pb.Entry) bool { return proto.Equal(x, y) })
}

// checkIndex checks the index's own invariants.
func checkIndex(t *testing.T, l *Log, ctx string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, g := range l.mu.st.groups {
		if g.missing != g.ci || uint64(len(g.ents)) != g.last-g.ci {
			t.Fatalf("%s: group %d: ci %d missing %d last %d, %d metas", ctx, id, g.ci, g.missing, g.last, len(g.ents))
		}
		if len(g.cache) > l.opts.CacheEntries || (len(g.cache) > 1 && g.cacheBytes > l.opts.CacheBytes) {
			t.Fatalf("%s: group %d cache %d entries %d bytes", ctx, id, len(g.cache), g.cacheBytes)
		}
		for i, e := range g.cache {
			if want := g.last - uint64(len(g.cache)) + 1 + uint64(i); e.GetIndex() != want {
				t.Fatalf("%s: group %d cache holds %d at %d", ctx, id, e.GetIndex(), want)
			}
		}
	}
	for i := 1; i < len(l.mu.segs); i++ {
		if l.mu.segs[i].seq != l.mu.segs[i-1].seq+1 {
			t.Fatalf("%s: segments not contiguous", ctx)
		}
	}
	names, _ := l.fs.List(l.dir)
	n := 0
	for _, name := range names {
		if _, ok := parseSegName(name); ok {
			n++
		}
	}
	if n != len(l.mu.segs) {
		t.Fatalf("%s: %d segment files, %d in the log", ctx, n, len(l.mu.segs))
	}
}

func open(t *testing.T, fs vfs.FS, o Options) *Log {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	l, err := Open(fs, "raftlog", o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func smallOpts() Options {
	return Options{SegmentSize: 8 << 10, CacheEntries: 6, CacheBytes: 1 << 10}
}

// TestModel drives random batches, invalid batches and reopens, and
// compares the log with the model after every step.
func TestModel(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed) })
	}
}

func runModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	fs := simfs.New(0)
	opts := smallOpts()
	if seed%3 == 0 {
		opts = Options{SegmentSize: 1 << 20} // the defaults for caches
	}
	l := open(t, fs, opts)
	defer func() { l.Close() }()
	g := &gen{rng: rng, term: 1, groups: 1 + int(seed%5)}
	m := model{}
	rotations, deletions, reads := 0, 0, 0
	for step := range 300 {
		ctx := fmt.Sprintf("seed %d step %d", seed, step)
		switch p := rng.IntN(100); {
		case p < 5:
			l.Close()
			l = open(t, fs, opts)
			ctx += " (reopened)"
		case p < 10: // an invalid batch is refused and changes nothing
			b := &Batch{}
			id := uint64(1 + rng.IntN(g.groups))
			mg := m[id]
			if mg == nil {
				mg = &modelGroup{}
			}
			switch rng.IntN(3) {
			case 0:
				b.Append(id, []*pb.Entry{ent(mg.last()+2, g.term, nil)}) // gap
			case 1:
				b.Compact(id, mg.last()+1)
			default:
				b.Append(id, []*pb.Entry{ent(mg.last()+1, g.term, nil), ent(mg.last()+3, g.term, nil)})
			}
			if err := l.Commit(b, rng.IntN(2) == 0); err == nil || errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: invalid batch: %v", ctx, err)
			}
		default:
			segs := l.Stats().Segments
			b, next := g.batch(m)
			if err := l.Commit(b, rng.IntN(2) == 0); err != nil {
				t.Fatalf("%s: Commit: %v", ctx, err)
			}
			m = next
			after := l.Stats().Segments
			if after > segs {
				rotations++
			} else if after < segs {
				deletions++
			}
		}
		check(t, l, m, rng, ctx)
		reads++
	}
	if testing.Verbose() {
		t.Logf("seed %d: %d rotations, %d steps with deletions, stats %+v", seed, rotations, deletions, l.Stats())
	}
	if opts.SegmentSize < 1<<20 && (rotations == 0 || deletions == 0) {
		t.Fatalf("seed %d: the run never rotated (%d) or deleted (%d) a segment", seed, rotations, deletions)
	}
}

type pbEntry = pb.Entry

func hsOf(term, vote, commit uint64) *pb.HardState {
	return &pb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(vote), Commit: proto.Uint64(commit)}
}
