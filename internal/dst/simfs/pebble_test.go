package simfs

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/kintsu/kintsu/internal/storage"
)

// These tests run Pebble as Kintsu opens it (storage.Open: the WAL at
// FormatWALSyncChunks, a Logger whose Fatalf panics).

const dir = "db"

func open(t *testing.T, fs *FS) *pebble.DB {
	t.Helper()
	db, err := storage.Open(storage.Options{Dir: dir, FS: fs, CacheBytes: 1 << 20,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func key(i int) []byte { return fmt.Appendf(nil, "key-%06d", i) }

func set(t *testing.T, db *pebble.DB, i int, o *pebble.WriteOptions) {
	t.Helper()
	if err := db.Set(key(i), key(i), o); err != nil {
		t.Fatal(err)
	}
}

func has(t *testing.T, db *pebble.DB, i int) bool {
	t.Helper()
	v, ok, err := storage.Get(db, key(i))
	if err != nil {
		t.Fatal(err)
	}
	if ok && string(v) != string(key(i)) {
		t.Fatalf("key %d holds %q", i, v)
	}
	return ok
}

// commitPanic runs a commit and returns what it panicked with: Pebble
// reports a failed WAL write or sync of a Sync commit through
// Logger.Fatalf, which panics under storage.Open.
func commitPanic(t *testing.T, commit func() error) (r any) {
	t.Helper()
	defer func() { r = recover() }()
	if err := commit(); err != nil {
		t.Fatalf("commit returned %v; expected it to succeed or panic", err)
	}
	return nil
}

// crashAndReopen abandons db on fs, power-fails fs and opens the clone.
// The abandoned handle is closed after the crash, as the simulator may do:
// nothing it writes may reach the clone.
func crashAndReopen(t *testing.T, fs *FS, db *pebble.DB, o CrashOptions) (*FS, *pebble.DB) {
	t.Helper()
	c := fs.Crash(o)
	_ = db.Close()
	return c, open(t, c)
}

// TestPebbleCrash: across crashes, memtable flushes and recycled WALs,
// every key written with Sync survives and no key written only with NoSync
// after the last sync does.
func TestPebbleCrash(t *testing.T) {
	fs := New(0)
	db := open(t, fs)
	next := 0
	var synced []int
	for gen := range 6 {
		for range 300 {
			set(t, db, next, pebble.Sync)
			synced = append(synced, next)
			next++
			if next%100 == 0 {
				// A flush rotates the WAL; the old one is recycled by a later rotation.
				if err := db.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
		firstLost := next
		for range 100 {
			set(t, db, next, pebble.NoSync)
			next++
		}
		// Their bytes are in the WAL file (unsynced) before the crash.
		if err := fs.Drain(func() error { return db.LogData(nil, pebble.Sync) }); err != nil {
			t.Fatal(err)
		}
		fs, db = crashAndReopen(t, fs, db, CrashOptions{})
		for _, i := range synced {
			if !has(t, db, i) {
				t.Fatalf("generation %d: synced key %d lost", gen, i)
			}
		}
		for i := firstLost; i < next; i++ {
			if has(t, db, i) {
				t.Fatalf("generation %d: unsynced key %d survived a power loss", gen, i)
			}
		}
	}
	defer db.Close()
	if st := fs.Stats(); st.Preimages == 0 || st.Crashes != 6 {
		t.Fatalf("stats %+v: no WAL was recycled (no write below a synced length), the test misses its case", st)
	}
}

// TestPebbleTornTail: a torn, sometimes corrupt, unsynced WAL tail never
// stops Pebble from opening; every synced key survives, the unsynced keys
// that survive are a prefix of those written, and the same seed tears the
// same way (same files and sizes, same keys kept). Not the same bytes:
// Pebble's WAL chunk headers carry a synced offset read racily against
// its flusher (see Hash).
func TestPebbleTornTail(t *testing.T) {
	const synced, unsynced = 200, 400
	run := func(seed uint64) (string, int, Stats) {
		fs := New(0)
		db := open(t, fs)
		for i := range synced {
			set(t, db, i, pebble.Sync)
		}
		val := make([]byte, 100)
		for i := synced; i < synced+unsynced; i++ {
			if err := db.Set(key(i), append(key(i), val...), pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
		// Every committed byte in the WAL file, unsynced, whatever the
		// flusher's timing.
		if err := fs.Drain(func() error { return db.LogData(nil, pebble.Sync) }); err != nil {
			t.Fatal(err)
		}
		c := fs.Crash(CrashOptions{Rand: rand.New(rand.NewPCG(seed, 7)), TornProb: 1, CorruptProb: 0.5})
		_ = db.Close()
		h := sizes(t, c)
		db = open(t, c)
		defer db.Close()
		for i := range synced {
			if !has(t, db, i) {
				t.Fatalf("seed %d: synced key %d lost", seed, i)
			}
		}
		kept := 0
		for i := synced; i < synced+unsynced; i++ {
			v, ok, err := storage.Get(db, key(i))
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if len(v) != len(key(i))+len(val) {
				t.Fatalf("seed %d: key %d has a %d-byte value", seed, i, len(v))
			}
			kept++
		}
		for i := synced + kept; i < synced+unsynced; i++ {
			if has(t, db, i) {
				t.Fatalf("seed %d: key %d survived but key %d did not: not a prefix", seed, i, synced+kept)
			}
		}
		return h, kept, c.Stats()
	}
	var sawPartial, sawCorrupt bool
	for seed := range uint64(12) {
		h1, kept, st := run(seed)
		h2, kept2, st2 := run(seed)
		if h1 != h2 || kept != kept2 || st != st2 {
			t.Fatalf("seed %d: two runs differ: kept %d and %d keys, stats %+v and %+v, files\n%s\nand\n%s", seed, kept, kept2, st, st2, h1, h2)
		}
		sawPartial = sawPartial || (kept > 0 && kept < unsynced)
		sawCorrupt = sawCorrupt || st.CorruptBytes > 0
	}
	if !sawPartial || !sawCorrupt {
		t.Fatalf("partial tail seen %v, corruption seen %v: the seeds miss the case", sawPartial, sawCorrupt)
	}
}

// TestPebbleFailNextSyncs: a failed WAL fsync fails the Sync commit (through
// Pebble's Fatalf, a panic under storage.Open) and the write is not durable.
func TestPebbleFailNextSyncs(t *testing.T) {
	fs := New(0)
	db := open(t, fs)
	set(t, db, 0, pebble.Sync)
	fs.FailNextSyncs(1)
	r := commitPanic(t, func() error { return db.Set(key(1), key(1), pebble.Sync) })
	if msg, ok := r.(string); !ok || !strings.Contains(msg, ErrInjectedSync.Error()) {
		t.Fatalf("Sync commit with a failing fsync: panic %T %v", r, r)
	}
	if st := fs.Stats(); st.FailedSyncs != 1 {
		t.Fatalf("stats %+v", st)
	}
	c, db2 := crashAndReopen(t, fs, db, CrashOptions{})
	defer db2.Close()
	if !has(t, db2, 0) || has(t, db2, 1) {
		t.Fatalf("after the crash: key 0 %v, key 1 (failed sync) %v", has(t, db2, 0), has(t, db2, 1))
	}
	set(t, db2, 2, pebble.Sync) // the clone is disarmed
	_ = c
}

// TestPebbleFull: on a full disk the Sync commit fails with ENOSPC and
// claims nothing.
func TestPebbleFull(t *testing.T) {
	fs := New(0)
	db := open(t, fs)
	set(t, db, 0, pebble.Sync)
	fs.SetFull(true)
	r := commitPanic(t, func() error { return db.Set(key(1), key(1), pebble.Sync) })
	if msg, ok := r.(string); !ok || !strings.Contains(msg, syscall.ENOSPC.Error()) {
		t.Fatalf("Sync commit on a full disk: panic %T %v", r, r)
	}
	if fs.Stats().FullErrors == 0 {
		t.Fatal("no write was refused")
	}
	// The clone is not full: Pebble's Open on a full disk would hang (its
	// recovery flush is retried forever).
	_, db = crashAndReopen(t, fs, db, CrashOptions{})
	defer db.Close()
	if !has(t, db, 0) || has(t, db, 1) {
		t.Fatal("after the crash, the refused write is there or the synced one is not")
	}
}

// TestPebbleLazySync: the planted bug loses a write Pebble acknowledged as
// synced; SyncAll (the simulated lazy flush) makes it durable.
func TestPebbleLazySync(t *testing.T) {
	fs := New(0)
	db := open(t, fs)
	set(t, db, 0, pebble.Sync)
	fs.LazySync(true)
	set(t, db, 1, pebble.Sync)
	fs2, db := crashAndReopen(t, fs, db, CrashOptions{})
	if !has(t, db, 0) || has(t, db, 1) {
		t.Fatalf("lazy sync: key 0 %v, acknowledged key 1 %v (expected lost)", has(t, db, 0), has(t, db, 1))
	}
	set(t, db, 2, pebble.Sync)
	fs2.SyncAll()
	set(t, db, 3, pebble.Sync)
	fs3, db := crashAndReopen(t, fs2, db, CrashOptions{})
	defer db.Close()
	if !has(t, db, 2) || has(t, db, 3) {
		t.Fatalf("after SyncAll: key 2 %v, key 3 %v", has(t, db, 2), has(t, db, 3))
	}
	if st := fs3.Stats(); st.LazySyncs == 0 || st.SyncAlls != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPebbleRefusesCorruptSyncedRecord is why a torn tail never touches
// synced bytes: damage to a synced WAL record, vouched for by later chunks,
// makes Kintsu's storage refuse to open.
func TestPebbleRefusesCorruptSyncedRecord(t *testing.T) {
	fs := New(0)
	db := open(t, fs)
	// Pebble looks for chunks vouching for a bad record only in the WAL
	// blocks (32 KiB) after the one holding it: write several blocks.
	for i := range 300 {
		if err := db.Set(key(i), make([]byte, 1000), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	c := fs.Crash(CrashOptions{})
	_ = db.Close()
	names, err := c.List(dir) // sorted: the newest WAL is the last *.log
	if err != nil {
		t.Fatal(err)
	}
	var wal string
	for _, name := range names {
		if strings.HasSuffix(name, ".log") {
			wal = c.PathJoin(dir, name)
		}
	}
	st, err := c.Stat(wal)
	if err != nil || st.Size() < 33<<10 {
		t.Fatalf("newest WAL %s: %v, %v bytes; the test needs more than one block", wal, err, st)
	}
	const at = 1000 // in the first block; later blocks vouch for it
	f, err := c.OpenReadWrite(wal, "")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, at)
	b[0] ^= 0xff
	f.WriteAt(b, at)
	f.Sync()
	f.Close()
	_, err = storage.Open(storage.Options{Dir: dir, FS: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, storage.ErrCorruptDir) {
		t.Fatalf("open with a corrupt synced WAL record (%s, offset %d): %v", wal, at, err)
	}
}

// sizes lists the durable files of fs with their sizes.
func sizes(t *testing.T, fs *FS) string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, name := range names {
		st, err := fs.Stat(fs.PathJoin(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %d\n", name, st.Size())
	}
	return b.String()
}
