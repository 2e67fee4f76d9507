package raftlog

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/kintsu/kintsu/internal/dst/simfs"
	"go.etcd.io/raft/v3"
)

// TestConcurrentReads: readers see consistent logs while a writer
// appends, compacts and rotates segments (run it with -race).
func TestConcurrentReads(t *testing.T) {
	l := open(t, simfs.New(0), Options{SegmentSize: 4 << 10, CacheEntries: 4})
	defer l.Close()
	const groups = 3
	done := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				g := uint64(n%groups + 1)
				first, _ := l.FirstIndex(g)
				last, _ := l.LastIndex(g)
				if first > last {
					continue
				}
				es, err := l.Entries(g, first, last+1, uint64(r*500))
				if errors.Is(err, raft.ErrCompacted) {
					continue // compacted between the calls
				}
				if err != nil || len(es) == 0 {
					errs <- fmt.Errorf("group %d Entries(%d, %d): %d, %v", g, first, last+1, len(es), err)
					return
				}
				for k, e := range es {
					if e.GetIndex() != first+uint64(k) || string(e.GetData()) != fmt.Sprintf("%d/%d", g, e.GetIndex()) {
						errs <- fmt.Errorf("group %d: entry %v at %d", g, e, first+uint64(k))
						return
					}
				}
			}
		}()
	}
	for i := range uint64(300) {
		b := l.NewBatch()
		for g := range uint64(groups) {
			b.Append(g+1, []*pbEntry{ent(i+1, 1, fmt.Appendf(nil, "%d/%d", g+1, i+1))})
			if i > 10 && i%7 == g {
				b.Compact(g+1, i-5)
			}
		}
		if err := l.Commit(b, i%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		t.Fatal("readers did not stop")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestRealDisk: the OS file system, directory syncs included.
func TestRealDisk(t *testing.T) {
	dir := t.TempDir() + "/log"
	l, err := Open(vfs.Default, dir, Options{Logger: quietLogger(), SegmentSize: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	commitN(t, l, 50, true)
	if err := l.Compact(1, 45); err != nil {
		t.Fatal(err)
	}
	commitN(t, l, 1, true)
	if n := l.Stats().Segments; n > 3 {
		t.Fatalf("%d segments after compaction", n)
	}
	if _, err := Open(vfs.Default, dir, Options{}); err == nil {
		t.Fatal("a second Open of a locked log succeeded")
	}
	l.Close()
	l, err = Open(vfs.Default, dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	es, err := l.Entries(1, 46, 52, 1<<20)
	if err != nil || len(es) != 6 || string(es[5].GetData()) != "entry 51" {
		t.Fatalf("after reopen: %v %v", es, err)
	}
}
