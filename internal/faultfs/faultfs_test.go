package faultfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/kintsu/kintsu/internal/storage"
)

func key(i int) []byte { return []byte(fmt.Sprintf("k%05d", i)) }

func open(t *testing.T, dir string, fs vfs.FS) *pebble.DB {
	t.Helper()
	db, err := storage.Open(storage.Options{Dir: dir, FS: fs, CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func set(t *testing.T, db *pebble.DB, i int, o *pebble.WriteOptions) {
	t.Helper()
	if err := db.Set(key(i), key(i), o); err != nil {
		t.Fatal(err)
	}
}

// present counts which of keys [0, n) db holds, each with its own value.
func present(t *testing.T, db *pebble.DB, n int) int {
	t.Helper()
	found := 0
	for i := range n {
		v, ok, err := storage.Get(db, key(i))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if !bytes.Equal(v, key(i)) {
				t.Fatalf("key %d = %q", i, v)
			}
			found++
		}
	}
	return found
}

// commitPanic runs a commit and returns what it panicked with (nil if it
// returned), failing the test if it returned an error instead.
func commitPanic(t *testing.T, commit func() error) (r any) {
	t.Helper()
	defer func() { r = recover() }()
	if err := commit(); err != nil {
		t.Fatalf("commit returned %v; expected it to succeed or panic", err)
	}
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTransparent(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   vfs.FS
		o    Options
	}{
		{"mem", vfs.NewMem(), Options{}},
		{"disk", vfs.Default, Options{}},
		// A lazy WAL loses nothing across a clean close, and exercises the
		// real-descriptor paths (Preallocate, SyncTo) Pebble takes on disk.
		{"disk-lazywal", vfs.Default, Options{LazyWAL: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := "db"
			if tc.fs == vfs.Default {
				dir = t.TempDir()
			}
			fs := New(tc.fs, tc.o)
			db := open(t, dir, fs)
			const n = 2000
			for i := range n {
				o := pebble.NoSync
				if i%10 == 0 {
					o = pebble.Sync
				}
				set(t, db, i, o)
				if i == n/2 {
					// Sstables, the MANIFEST and WAL rotation go through fs too.
					if err := db.Flush(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if err := fs.Close(); err != nil {
				t.Fatal(err)
			}
			db = open(t, dir, New(tc.fs, Options{}))
			defer db.Close()
			if got := present(t, db, n); got != n {
				t.Fatalf("after reopen %d of %d keys", got, n)
			}
		})
	}
}

// TestFailWritesSyncCommit pins what Pebble does when the WAL write fails
// under a Sync commit; the package comment states the same facts.
func TestFailWritesSyncCommit(t *testing.T) {
	fs := New(vfs.NewMem(), Options{})
	db := open(t, "db", fs)
	set(t, db, 0, pebble.Sync)

	fs.Set(Fault{FailWrites: true})
	r := commitPanic(t, func() error { return db.Set(key(1), key(1), pebble.Sync) })
	msg, ok := r.(string)
	if !ok || !strings.Contains(msg, "fatal commit error") || !strings.Contains(msg, ErrInjected.Error()) {
		t.Fatalf("Sync commit under FailWrites: panic %T %v; expected storage's Fatalf panic", r, r)
	}
	// The failed batch was applied to the memtable before the sync error
	// surfaced, so this handle serves a write that is not durable.
	if got := present(t, db, 2); got != 2 {
		t.Fatalf("failed write visible: got %d keys, expected 2", got)
	}

	// Healing the disk does not heal the DB: the WAL writer's error sticks.
	fs.Set(Fault{})
	r = commitPanic(t, func() error { return db.Set(key(2), key(2), pebble.Sync) })
	if msg, ok := r.(string); !ok || !strings.Contains(msg, ErrInjected.Error()) {
		t.Fatalf("Sync commit after heal: panic %T %v; expected the same Fatalf", r, r)
	}
	// Close reports the stuck error but releases the lock, so the same
	// process can reopen; the reopened DB has exactly the acked writes.
	if err := db.Close(); !errors.Is(err, ErrInjected) {
		t.Fatalf("Close after failure: %v", err)
	}
	db = open(t, "db", fs)
	defer db.Close()
	if got := present(t, db, 3); got != 1 {
		t.Fatalf("after reopen %d keys, expected only the acked one", got)
	}
	set(t, db, 3, pebble.Sync)
}

// TestFailWritesNoSyncCommit: after the WAL failed, NoSync commits keep
// returning nil (their bytes are dropped) until a 32 KiB WAL block fills;
// then Pebble panics with the raw error while holding the commit pipeline's
// mutex, so the handle is wedged. Healing the disk first changes nothing.
func TestFailWritesNoSyncCommit(t *testing.T) {
	fs := New(vfs.NewMem(), Options{})
	db := open(t, "db", fs)
	fs.Set(Fault{FailWrites: true})
	// A failed Sync commit makes sure the WAL writer has seen the error
	// before the NoSync commits start.
	if r := commitPanic(t, func() error { return db.Set(key(0), key(0), pebble.Sync) }); r == nil {
		t.Fatal("Sync commit under FailWrites succeeded")
	}
	fs.Set(Fault{})
	val := make([]byte, 1<<10)
	var r any
	accepted := 0
	for i := 1; r == nil && i < 100; i++ {
		r = commitPanic(t, func() error { return db.Set(key(i), val, pebble.NoSync) })
		if r == nil {
			accepted++
		}
	}
	err, ok := r.(error)
	if !ok || !errors.Is(err, ErrInjected) || accepted == 0 {
		t.Fatalf("after %d accepted NoSync commits: panic %T %v", accepted, r, r)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }()
		_ = db.Set(key(999), nil, pebble.NoSync)
	}()
	select {
	case <-done:
		t.Fatal("commit after the raw panic returned; the pipeline was expected to be wedged")
	case <-time.After(500 * time.Millisecond):
	}
	// The wedged goroutine and DB are abandoned: even Close would block.
}

// TestFailWritesRotationIsFatal: once the WAL writer has failed, rotating
// the memtable (an explicit Flush, or a full memtable) panics with DB.mu
// already unlocked, which the Go runtime turns into an unrecoverable fatal
// error. Run in a child process because it kills the process.
func TestFailWritesRotationIsFatal(t *testing.T) {
	if os.Getenv("FAULTFS_ROTATION_CHILD") == "1" {
		fs := New(vfs.NewMem(), Options{})
		db := open(t, "db", fs)
		fs.Set(Fault{FailWrites: true})
		_ = commitPanic(t, func() error { return db.Set(key(0), key(0), pebble.Sync) })
		fs.Set(Fault{})
		defer func() { _ = recover() }() // cannot catch a fatal error
		_ = db.Flush()
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFailWritesRotationIsFatal$")
	cmd.Env = append(os.Environ(), "FAULTFS_ROTATION_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("fatal error: sync: unlock of unlocked mutex")) {
		t.Fatalf("child: err=%v, output:\n%s", err, out)
	}
}

func TestSyncDelay(t *testing.T) {
	fs := New(vfs.NewMem(), Options{})
	db := open(t, "db", fs)
	defer db.Close()

	const delay = 200 * time.Millisecond
	fs.Set(Fault{SyncDelay: delay})
	start := time.Now()
	set(t, db, 0, pebble.Sync)
	if took := time.Since(start); took < delay {
		t.Fatalf("Sync commit took %v under SyncDelay %v", took, delay)
	}

	fs.Set(Fault{SyncDelay: 10 * time.Second})
	done := make(chan error, 1)
	go func() { done <- db.Set(key(1), key(1), pebble.Sync) }()
	waitFor(t, "a sync to stall", func() bool { return fs.stalled.Load() > 0 })
	healed := time.Now()
	fs.Set(Fault{})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(healed); took >= 5*time.Second {
		t.Fatalf("stalled sync returned %v after the heal", took)
	}
	if got := present(t, db, 2); got != 2 {
		t.Fatalf("%d keys after stall", got)
	}
}

// crashAfterSyncCommits writes n keys with Sync commits, takes what the
// disk has durably (a crash clone: all a SIGKILL leaves, and more than a
// power cut would) while the DB is still open, and counts the keys a DB
// opened on it finds.
func crashAfterSyncCommits(t *testing.T, o Options, n int) int {
	mem := vfs.NewCrashableMem()
	fs := New(mem, o)
	db := open(t, "db", fs)
	for i := range n {
		set(t, db, i, pebble.Sync)
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{})
	defer func() {
		_ = db.Close()
		_ = fs.Close()
	}()
	db2 := open(t, "db", crashed)
	defer db2.Close()
	return present(t, db2, n)
}

func TestLazyWALLosesAckedWrites(t *testing.T) {
	const n = 100
	if got := crashAfterSyncCommits(t, Options{}, n); got != n {
		t.Fatalf("control: crash lost writes without LazyWAL: %d of %d", got, n)
	}
	if got := crashAfterSyncCommits(t, Options{LazyWAL: time.Hour}, n); got != 0 {
		t.Fatalf("LazyWAL: crash kept %d of %d acked writes; expected none", got, n)
	}
}

// held is how many WAL bytes fs holds in memory.
func held(fs *FS) int {
	fs.mu.Lock()
	files := fs.lazyFiles()
	fs.mu.Unlock()
	n := 0
	for _, f := range files {
		f.mu.Lock()
		n += len(f.held)
		f.mu.Unlock()
	}
	return n
}

// walSize is the size of the one WAL file in dir on fs.
func walSize(t *testing.T, fs vfs.FS, dir string) int64 {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, name := range names {
		if strings.HasSuffix(name, ".log") {
			logs = append(logs, name)
		}
	}
	if len(logs) != 1 {
		t.Fatalf("WAL files in %s: %v", dir, logs)
	}
	st, err := fs.Stat(fs.PathJoin(dir, logs[0]))
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestLazyWALWriteThrough(t *testing.T) {
	const n = 100
	for _, tc := range []struct {
		name  string
		o     Options
		flush func(*FS)
	}{
		{"fs-close", Options{LazyWAL: time.Hour}, func(fs *FS) {
			if err := fs.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"interval", Options{LazyWAL: 10 * time.Millisecond}, func(*FS) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			fs := New(mem, tc.o)
			defer fs.Close()
			db := open(t, "db", fs)
			defer db.Close()
			for i := range n {
				set(t, db, i, pebble.Sync)
			}
			tc.flush(fs)
			// A write-through syncs before it lets go of the file, so once
			// nothing is held a crash clone has every byte.
			waitFor(t, "held bytes to be written through", func() bool { return held(fs) == 0 })
			crashed := mem.CrashClone(vfs.CrashCloneCfg{})
			db2 := open(t, "db", crashed)
			defer db2.Close()
			if got := present(t, db2, n); got != n {
				t.Fatalf("after write-through %d of %d keys survive a crash", got, n)
			}
		})
	}
}

// TestLazyWALHoldsRaftLogSegments: the raft log's segments are write-ahead
// logs too; hex names such as 0000000a.log must be held as well as the
// ones Pebble's decimal parser happens to accept.
func TestLazyWALHoldsRaftLogSegments(t *testing.T) {
	fs := New(vfs.NewMem(), Options{LazyWAL: time.Hour})
	defer fs.Close()
	for _, name := range []string{"00000009.log", "0000000a.log", "OPTIONS-000003"} {
		before := held(fs)
		f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("record")); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		wal := strings.HasSuffix(name, ".log")
		if got := held(fs) - before; (got > 0) != wal {
			t.Errorf("%s: %d bytes held; a WAL file: %v", name, got, wal)
		}
		f.Close()
	}
}

// TestLazyWALBound: past 64 MiB held, a Write goes through at once; non-WAL
// files are never held.
func TestLazyWALBound(t *testing.T) {
	mem := vfs.NewMem()
	fs := New(mem, Options{LazyWAL: time.Hour})
	defer fs.Close()
	if err := fs.MkdirAll("db", 0o755); err != nil {
		t.Fatal(err)
	}
	sst, err := fs.Create("db/000001.sst", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sst.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if st, _ := mem.Stat("db/000001.sst"); st.Size() != 1 {
		t.Fatalf("sstable write held: inner size %d", st.Size())
	}

	f, err := fs.Create("db/000002.log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for range maxHeld / len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if got := walSize(t, mem, "db"); got != 0 {
		t.Fatalf("%d bytes written through below the bound", got)
	}
	if _, err := f.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if got := walSize(t, mem, "db"); got != maxHeld+1 {
		t.Fatalf("inner WAL size %d past the bound, expected %d", got, maxHeld+1)
	}
	if err := errors.Join(f.Close(), sst.Close()); err != nil {
		t.Fatal(err)
	}
}
