package simfs

import (
	"encoding/binary"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"path"
	"strings"
)

// corruptBlock is Pebble's WAL block size: corruption stays inside the
// block that holds the last kept byte.
const corruptBlock = 32 << 10

// CrashOptions shape a crash. The zero value keeps exactly the synced
// state.
type CrashOptions struct {
	// Rand draws the torn tails; required when TornProb > 0.
	Rand *rand.Rand
	// TornProb is the probability that a file with unsynced bytes keeps a
	// prefix of them (its length uniform in [0, all of them]).
	TornProb float64
	// CorruptProb is the probability that a torn tail that kept some bytes
	// has 1 to 4 of the kept unsynced bytes of its last 32 KiB block
	// flipped.
	CorruptProb float64
	// Tear selects the files that may be torn, by path from the root;
	// nil means WAL files (*.log).
	Tear func(path string) bool
}

func isWAL(p string) bool { return strings.HasSuffix(p, ".log") }

// Crash is a power loss: it returns a new FS holding what was durable (and
// the torn tails o asks for), carrying over the counters and LazySync (the
// planted bug is a property of the disk). FailNextSyncs and SetFull are
// not carried: Pebble's Open on a full disk never returns (the flush of
// the replayed WAL is retried forever), so the simulator re-arms them
// after the reopen if it wants them. The old FS keeps working, disarmed of injected errors, so the
// engine abandoned on it can be closed; nothing it does reaches the clone.
func (fs *FS) Crash(o CrashOptions) *FS {
	if o.TornProb > 0 && o.Rand == nil {
		panic("simfs: CrashOptions.TornProb needs a Rand")
	}
	if o.Tear == nil {
		o.Tear = isWAL
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	c := &crasher{o: o}
	root := c.cloneDir(fs.mu.root, "")

	out := New(fs.capacity)
	out.mu.root = root
	out.mu.stats = fs.mu.stats
	out.mu.stats.Crashes++
	out.mu.stats.TornFiles += c.tornFiles
	out.mu.stats.TornBytes += c.tornBytes
	out.mu.stats.CorruptBytes += c.corruptBytes
	out.mu.faults = faults{lazy: fs.mu.faults.lazy}

	fs.mu.crashed = true
	fs.mu.faults.failSyncs = 0
	fs.mu.faults.full = nil
	return out
}

// Crashed reports whether a Crash was taken from fs (it is then a ghost:
// working, but no longer the node's disk).
func (fs *FS) Crashed() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.mu.crashed
}

type crasher struct {
	o CrashOptions
	// clones keeps hard links linked: a node reached twice is cloned once.
	// Only looked up, never walked.
	clones                             map[*node]*node
	tornFiles, tornBytes, corruptBytes int64
}

// cloneDir clones the durable entries of d, in sorted name order so that
// the draws of the torn tails follow paths, never map order.
func (c *crasher) cloneDir(d *node, at string) *node {
	out := newDir()
	for _, name := range sortedNames(d.synced) {
		// A node linked under two names becomes two files, as in MemFS
		// (Pebble links only immutable sstables, so nothing can tell).
		child := d.synced[name]
		p := path.Join(at, name)
		var cl *node
		if child.dir {
			cl = c.cloneDir(child, p)
		} else {
			cl = &node{data: c.cloneFile(child, p)}
			cl.syncedLen = len(cl.data)
		}
		out.children[name] = cl
	}
	// Everything in the clone is durable, as after a reboot.
	out.synced = maps.Clone(out.children)
	return out
}

// cloneFile returns the content f leaves after the crash.
func (c *crasher) cloneFile(f *node, p string) []byte {
	img := f.durable()
	if c.o.TornProb <= 0 || !f.dirty() || !c.o.Tear(p) || c.o.Rand.Float64() >= c.o.TornProb {
		return img
	}
	spans := f.unsynced()
	total := 0
	for _, s := range spans {
		total += s.hi - s.lo
	}
	keep := c.o.Rand.IntN(total + 1)
	var kept []span
	for _, s := range spans {
		if keep == 0 {
			break
		}
		hi := min(s.hi, s.lo+keep)
		keep -= hi - s.lo
		if s.lo < len(img) {
			copy(img[s.lo:hi], f.data[s.lo:hi]) // below the synced length
		} else {
			img = append(img, f.data[s.lo:hi]...)
		}
		kept = append(kept, span{s.lo, hi})
		c.tornBytes += int64(hi - s.lo)
	}
	c.tornFiles++
	if len(kept) == 0 || c.o.CorruptProb <= 0 || c.o.Rand.Float64() >= c.o.CorruptProb {
		return img
	}
	// The kept unsynced bytes of the block holding the last kept byte.
	last := kept[len(kept)-1].hi - 1
	start := last - last%corruptBlock
	var in []span
	n := 0
	for _, s := range kept {
		if lo := max(s.lo, start); lo < s.hi {
			in = append(in, span{lo, s.hi})
			n += s.hi - lo
		}
	}
	for range 1 + c.o.Rand.IntN(4) {
		at := c.o.Rand.IntN(n)
		for _, s := range in {
			if at < s.hi-s.lo {
				img[s.lo+at] ^= byte(1 + c.o.Rand.IntN(255))
				break
			}
			at -= s.hi - s.lo
		}
		c.corruptBytes++
	}
	return img
}

// Hash is a hash of the durable state (what a crash without torn tails
// would keep): every durable path, in sorted order, with its kind and
// content. It costs O(durable bytes) and is the same in every process for
// the same operations. Pebble does not issue the same bytes run after run,
// though: a flush records the sstable's creation time (wall-clock seconds)
// in the MANIFEST, and a WAL chunk header records the synced offset as
// read racily against the WAL flusher's update. So Hash checks the FS;
// a simulator's trace digests Pebble's logical contents instead.
func (fs *FS) Hash() uint64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	h := fnv.New64a()
	var num [8]byte
	var walk func(d *node, at string)
	walk = func(d *node, at string) {
		for _, name := range sortedNames(d.synced) {
			child := d.synced[name]
			p := path.Join(at, name)
			if child.dir {
				h.Write([]byte("d " + p + "\x00"))
				walk(child, p)
				continue
			}
			img := child.durable()
			h.Write([]byte("f " + p + "\x00"))
			binary.LittleEndian.PutUint64(num[:], uint64(len(img)))
			h.Write(num[:])
			h.Write(img)
		}
	}
	walk(fs.mu.root, "")
	return h.Sum64()
}
