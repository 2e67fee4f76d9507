package simfs

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// dump lists every path of fs with its content, in sorted order.
func dump(t *testing.T, fs vfs.FS) string {
	t.Helper()
	var b strings.Builder
	var walk func(dir string)
	walk = func(dir string) {
		names, err := fs.List(dir)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		for _, name := range names {
			p := fs.PathJoin(dir, name)
			st, err := fs.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st.IsDir() {
				fmt.Fprintf(&b, "%s/\n", p)
				walk(p)
				continue
			}
			f, err := fs.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			h := fnv.New64a()
			h.Write(data)
			fmt.Fprintf(&b, "%s %d %x\n", p, len(data), h.Sum64())
		}
	}
	walk("")
	return b.String()
}

// TestMatchesMemFS runs random file-system operations on simfs and on
// Pebble's crashable MemFS side by side; after every crash both must hold
// the same tree, byte for byte (MemFS's CrashClone with the zero config is
// the reference for what is durable).
func TestMatchesMemFS(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { matchMemFS(t, seed) })
	}
}

func matchMemFS(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	var ref *vfs.MemFS = vfs.NewCrashableMem()
	sim := New(0)
	dirs := []string{"", "a", "a/b"}
	paths := func() string {
		return fmt.Sprintf("%s/f%d", dirs[r.IntN(len(dirs))], r.IntN(4))
	}
	type pair struct{ ref, sim vfs.File }
	var open []pair
	both := func(op string, e1, e2 error) {
		if (e1 == nil) != (e2 == nil) {
			t.Fatalf("seed %d %s: memfs %v, simfs %v", seed, op, e1, e2)
		}
	}
	for _, fs := range []vfs.FS{ref, sim} {
		if err := fs.MkdirAll("a/b", 0o755); err != nil {
			t.Fatal(err)
		}
		syncDir(t, fs, "")
		syncDir(t, fs, "a")
	}
	for step := range 400 {
		switch k := r.IntN(100); {
		case k < 10:
			p := paths()
			f1, e1 := ref.Create(p, vfs.WriteCategoryUnspecified)
			f2, e2 := sim.Create(p, vfs.WriteCategoryUnspecified)
			both("create", e1, e2)
			if e1 == nil {
				open = append(open, pair{f1, f2})
			}
		case k < 35 && len(open) > 0:
			f := open[r.IntN(len(open))]
			buf := make([]byte, r.IntN(9000))
			for i := range buf {
				buf[i] = byte(r.Uint32())
			}
			if r.IntN(3) == 0 {
				st, _ := f.sim.Stat()
				off := int64(r.IntN(int(st.Size()) + 100))
				_, e1 := f.ref.WriteAt(slices.Clone(buf), off)
				_, e2 := f.sim.WriteAt(buf, off)
				both("writeat", e1, e2)
			} else {
				_, e1 := f.ref.Write(slices.Clone(buf))
				_, e2 := f.sim.Write(buf)
				both("write", e1, e2)
			}
		case k < 50 && len(open) > 0:
			f := open[r.IntN(len(open))]
			both("sync", f.ref.Sync(), f.sim.Sync())
		case k < 62:
			d := dirs[r.IntN(len(dirs))]
			for _, fs := range []vfs.FS{ref, sim} {
				df, err := fs.OpenDir(d)
				if err != nil {
					t.Fatal(err)
				}
				if err := df.Sync(); err != nil {
					t.Fatal(err)
				}
				df.Close()
			}
		case k < 70:
			a, b := paths(), paths()
			if _, err := sim.Stat(a); err != nil || a == b {
				continue // MemFS's rename of a missing file differs; not exercised
			}
			both("rename", ref.Rename(a, b), sim.Rename(a, b))
		case k < 76:
			p := paths()
			both("remove", ref.Remove(p), sim.Remove(p))
		case k < 80:
			a, b := paths(), paths()
			both("link", ref.Link(a, b), sim.Link(a, b))
		case k < 86:
			a, b := paths(), paths()
			if _, err := sim.Stat(a); err != nil || a == b {
				continue
			}
			f1, e1 := ref.ReuseForWrite(a, b, vfs.WriteCategoryUnspecified)
			f2, e2 := sim.ReuseForWrite(a, b, vfs.WriteCategoryUnspecified)
			both("reuse", e1, e2)
			if e1 == nil {
				open = append(open, pair{f1, f2})
			}
		case k < 90 && len(open) > 0:
			i := r.IntN(len(open))
			both("close", open[i].ref.Close(), open[i].sim.Close())
			open = slices.Delete(open, i, i+1)
		case k < 93:
			ref = ref.CrashClone(vfs.CrashCloneCfg{})
			sim = sim.Crash(CrashOptions{})
			open = nil
			if got, want := dump(t, sim), dump(t, ref); got != want {
				t.Fatalf("seed %d step %d: after crash\nsimfs:\n%s\nmemfs:\n%s", seed, step, got, want)
			}
		}
	}
	ref = ref.CrashClone(vfs.CrashCloneCfg{})
	sim = sim.Crash(CrashOptions{})
	if got, want := dump(t, sim), dump(t, ref); got != want {
		t.Fatalf("seed %d: at the end\nsimfs:\n%s\nmemfs:\n%s", seed, got, want)
	}
}

func writeFile(t *testing.T, fs *FS, name string, data []byte, sync bool) vfs.File {
	t.Helper()
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func syncDir(t *testing.T, fs vfs.FS, dir string) {
	t.Helper()
	d, err := fs.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	d.Close()
}

func read(t *testing.T, fs vfs.FS, name string) ([]byte, bool) {
	t.Helper()
	f, err := fs.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return data, true
}

func TestDirectoryDurability(t *testing.T) {
	fs := New(0)
	writeFile(t, fs, "synced-file", []byte("x"), true).Close()
	if _, ok := read(t, fs.Crash(CrashOptions{}), "synced-file"); ok {
		t.Fatal("a synced file whose directory was never synced survived the crash")
	}
	syncDir(t, fs, "")
	if got, ok := read(t, fs.Crash(CrashOptions{}), "synced-file"); !ok || string(got) != "x" {
		t.Fatalf("after the directory sync: %q %v", got, ok)
	}
	// A rename is undone unless the directory is synced after it.
	if err := fs.Rename("synced-file", "renamed"); err != nil {
		t.Fatal(err)
	}
	c := fs.Crash(CrashOptions{})
	if _, ok := read(t, c, "renamed"); ok {
		t.Fatal("unsynced rename survived")
	}
	if _, ok := read(t, c, "synced-file"); !ok {
		t.Fatal("the old name of an unsynced rename is gone")
	}
}

func TestSyncedPrefixOnly(t *testing.T) {
	fs := New(0)
	f := writeFile(t, fs, "f", []byte("durable"), true)
	syncDir(t, fs, "")
	f.Write([]byte("-lost"))
	if got, _ := read(t, fs.Crash(CrashOptions{}), "f"); string(got) != "durable" {
		t.Fatalf("got %q", got)
	}
	// Overwrites below the synced length (a recycled WAL) are undone too.
	if _, err := f.WriteAt([]byte("DUR"), 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := read(t, fs.Crash(CrashOptions{}), "f"); string(got) != "durable" {
		t.Fatalf("overwrite: got %q", got)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, _ := read(t, fs.Crash(CrashOptions{}), "f"); string(got) != "DURable-lost" {
		t.Fatalf("after sync: got %q", got)
	}
}

// TestTornTail: a torn tail keeps the synced bytes intact and a prefix of
// the unsynced ones, with any corruption inside what it kept.
func TestTornTail(t *testing.T) {
	synced := bytes.Repeat([]byte("s"), 40000)
	unsynced := bytes.Repeat([]byte("u"), 50000)
	torn, corrupt := 0, 0
	for seed := range uint64(200) {
		fs := New(0)
		f := writeFile(t, fs, "000001.log", synced, true)
		syncDir(t, fs, "")
		f.Write(unsynced)
		c := fs.Crash(CrashOptions{Rand: rand.New(rand.NewPCG(seed, 2)), TornProb: 0.8, CorruptProb: 0.5})
		got, _ := read(t, c, "000001.log")
		if len(got) < len(synced) || len(got) > len(synced)+len(unsynced) {
			t.Fatalf("seed %d: length %d", seed, len(got))
		}
		if !bytes.Equal(got[:len(synced)], synced) {
			t.Fatalf("seed %d: synced bytes changed", seed)
		}
		flipped := 0
		for i, b := range got[len(synced):] {
			if b != 'u' {
				flipped++
				if i < len(got)-len(synced)-corruptBlock-1 {
					t.Fatalf("seed %d: corruption at %d, outside the last kept block", seed, len(synced)+i)
				}
			}
		}
		if flipped > 4 {
			t.Fatalf("seed %d: %d bytes corrupted", seed, flipped)
		}
		if len(got) > len(synced) {
			torn++
		}
		if flipped > 0 {
			corrupt++
		}
		st := c.Stats()
		if st.CorruptBytes < int64(flipped) || st.Crashes != 1 {
			t.Fatalf("seed %d: stats %+v, %d flipped", seed, st, flipped)
		}
	}
	if torn < 100 || corrupt < 30 {
		t.Fatalf("torn %d, corrupt %d of 200: the draws do not follow the probabilities", torn, corrupt)
	}
}

// TestCrashDeterministic: same operations and seed, same clone; torn tails
// are drawn per file in path order, never map order.
func TestCrashDeterministic(t *testing.T) {
	build := func() *FS {
		fs := New(0)
		for i := range 30 {
			f := writeFile(t, fs, fmt.Sprintf("%06d.log", i), bytes.Repeat([]byte{byte(i)}, 1000+i), true)
			f.Write(bytes.Repeat([]byte{byte(i + 1)}, 5000))
		}
		syncDir(t, fs, "")
		return fs
	}
	hashes := map[uint64]bool{}
	for seed := range uint64(5) {
		var first uint64
		for run := range 10 {
			c := build().Crash(CrashOptions{Rand: rand.New(rand.NewPCG(seed, 3)), TornProb: 0.5, CorruptProb: 0.5})
			if run == 0 {
				first = c.Hash()
				hashes[first] = true
			} else if h := c.Hash(); h != first {
				t.Fatalf("seed %d run %d: hash %x, first run %x", seed, run, h, first)
			}
		}
	}
	if len(hashes) < 5 {
		t.Fatalf("5 seeds gave %d distinct clones: the seed does not reach the tear", len(hashes))
	}
}

func TestOldFSNeverReachesClone(t *testing.T) {
	fs := New(0)
	f := writeFile(t, fs, "f", []byte("abc"), true)
	syncDir(t, fs, "")
	c := fs.Crash(CrashOptions{})
	h := c.Hash()
	f.WriteAt([]byte("XYZ"), 0)
	f.Write([]byte("more"))
	f.Sync()
	writeFile(t, fs, "g", []byte("g"), true).Close()
	syncDir(t, fs, "")
	if !fs.Crashed() || c.Crashed() {
		t.Fatal("Crashed() wrong")
	}
	if c.Hash() != h {
		t.Fatal("writes to the crashed FS changed the clone")
	}
	if got, _ := read(t, c, "f"); string(got) != "abc" {
		t.Fatalf("clone holds %q", got)
	}
}

func TestFaults(t *testing.T) {
	fs := New(0)
	wal := writeFile(t, fs, "000001.log", []byte("a"), false)
	sst := writeFile(t, fs, "000002.sst", []byte("b"), false)
	syncDir(t, fs, "")

	fs.FailNextSyncs(1)
	if err := sst.Sync(); err != nil {
		t.Fatalf("sstable sync under FailNextSyncs: %v (only WAL syncs are failed)", err)
	}
	if err := wal.Sync(); !errors.Is(err, ErrInjectedSync) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("armed WAL sync: %v", err)
	}
	if got, _ := read(t, fs.Crash(CrashOptions{}), "000001.log"); len(got) != 0 {
		t.Fatal("a failed sync made data durable")
	}
	if err := wal.Sync(); err != nil {
		t.Fatalf("second sync after FailNextSyncs(1): %v", err)
	}

	fs.SetFull(true)
	if _, err := wal.Write([]byte("x")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write on a full disk: %v", err)
	}
	if _, err := fs.Create("000002.log", vfs.WriteCategoryUnspecified); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("create of a WAL on a full disk: %v", err)
	}
	// Only the WAL is full: Pebble's background writes (sstables, the
	// MANIFEST) go on, since a failed MANIFEST write ends the process.
	m, err := fs.Create("MANIFEST-000002", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatalf("create of a MANIFEST on a full disk: %v", err)
	}
	if _, err := m.Write([]byte("x")); err != nil {
		t.Fatalf("write of a MANIFEST on a full disk: %v", err)
	}
	if u, _ := fs.GetDiskUsage(""); u.AvailBytes != 0 {
		t.Fatalf("full disk reports %d available", u.AvailBytes)
	}
	fs.SetFull(false)
	if _, err := wal.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}

	fs.LazySync(true)
	if err := wal.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, _ := read(t, fs.Crash(CrashOptions{}), "000001.log"); string(got) != "a" {
		t.Fatalf("a lazy sync made data durable: %q", got)
	}
	fs.SyncAll()
	if got, _ := read(t, fs.Crash(CrashOptions{}), "000001.log"); string(got) != "ax" {
		t.Fatalf("SyncAll did not sync: %q", got)
	}
	st := fs.Stats()
	if st.FailedSyncs != 1 || st.FullErrors != 2 || st.LazySyncs != 1 || st.SyncAlls != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A torn tail in a recycled file (rewritten below its old synced length)
// starts where the writes since the last sync start, never inside the
// synced bytes of the same block: Pebble writes a reused WAL from offset
// 0, and a tear or a flipped byte in its synced records would lose them.
// (The simulator found this: a synced hard state lost to a "torn tail".)
func TestTornTailOfARecycledFileKeepsItsSyncedBytes(t *testing.T) {
	old := bytes.Repeat([]byte("o"), 3*undoBlock)
	synced := bytes.Repeat([]byte("s"), 100)
	unsynced := bytes.Repeat([]byte("u"), 5000)
	for seed := range uint64(200) {
		fs := New(0)
		f := writeFile(t, fs, "000001.log", old, true)
		syncDir(t, fs, "")
		if _, err := f.(interface {
			WriteAt([]byte, int64) (int, error)
		}).WriteAt(synced, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.(interface {
			WriteAt([]byte, int64) (int, error)
		}).WriteAt(unsynced, int64(len(synced))); err != nil {
			t.Fatal(err)
		}
		c := fs.Crash(CrashOptions{Rand: rand.New(rand.NewPCG(seed, 3)), TornProb: 1, CorruptProb: 1})
		got, _ := read(t, c, "000001.log")
		if !bytes.Equal(got[:len(synced)], synced) {
			t.Fatalf("seed %d: the synced bytes of the rewritten block changed: %q", seed, got[:len(synced)])
		}
	}
}
