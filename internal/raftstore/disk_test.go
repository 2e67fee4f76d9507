package raftstore_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kintsu/kintsu/internal/faultfs"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/storage"
	"github.com/kintsu/kintsu/internal/transport"
)

// TestDiskFullRefusesWritesMovesLeadersAndRecovers: a node whose disk is
// below its reserve refuses proposals with NOSPACE (nothing proposed),
// hands its leaderships away, keeps following (what others commit reaches
// its state) and serves local reads; with space back it takes writes again.
func TestDiskFullRefusesWritesMovesLeadersAndRecovers(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	full := c.leader(0)
	if _, err := c.write(0, 1, "set", "before", "1"); err != nil {
		t.Fatal(err)
	}
	full.eng.SetDiskFull(true, 100<<20, 1<<30)
	if !full.eng.DiskFull() {
		t.Fatal("DiskFull() = false after SetDiskFull(true)")
	}
	seq++
	_, err := full.eng.Propose(context.Background(), 0, &raftstore.Request{Origin: 9, Seq: seq, Args: toArgs([]string{"set", "refused", "x"})})
	var ns *raftstore.NoSpaceError
	if !errors.As(err, &ns) || !errors.Is(err, raftstore.ErrNoSpace) {
		t.Fatalf("propose on a full node: err = %v, want a NoSpaceError", err)
	}
	if want := "disk almost full on node 1 (100 MiB free, reserve 1024 MiB): writes refused until space is freed"; err.Error() != strings.Replace(want, "node 1", "node "+strconv.FormatUint(full.id, 10), 1) {
		t.Errorf("error text %q", err.Error())
	}
	waitFor(t, "leadership to leave the full node", 10*time.Second, func() bool {
		l := full.eng.Leader(0)
		return l != 0 && l != full.id
	})
	if _, err := c.write(0, 1, "set", "during", "2"); err != nil {
		t.Fatalf("write through the new leader: %v", err)
	}
	waitFor(t, "the full node to apply what others commit", 10*time.Second, func() bool {
		return localGet(t, full, 0, "during") == bulk("2")
	})
	if got := localGet(t, full, 0, "before"); got != bulk("1") {
		t.Errorf("local read on the full node: %q", got)
	}
	if got := localGet(t, full, 0, "refused"); got != "$-1\r\n" {
		t.Errorf("the refused write was applied: %q", got)
	}

	full.eng.SetDiskFull(false, 2<<30, 1<<30)
	seq++
	_, err = full.eng.Propose(context.Background(), 0, &raftstore.Request{Origin: 9, Seq: seq, Args: toArgs([]string{"set", "after", "x"})})
	if errors.Is(err, raftstore.ErrNoSpace) || !errors.Is(err, raftstore.ErrNotLeader) {
		t.Fatalf("propose on a follower with space back: err = %v, want not-leader", err)
	}
}

// TestStalledWriteFencesTheNode: a synced write that hangs (a disk that
// stopped answering) fences the node after StallTimeout: Err says why,
// Done closes, the waiting proposer is answered at once, and Stop returns
// although the loop is still stuck inside storage.
func TestStalledWriteFencesTheNode(t *testing.T) {
	disk := faultfs.New(vfs.Default, faultfs.Options{})
	dir := t.TempDir()
	db, err := storage.Open(storage.Options{Dir: dir, FS: disk})
	if err != nil {
		t.Fatal(err)
	}
	rlog, err := raftstore.OpenLog(disk, dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	tr := transport.New(1, logger)
	eng, err := raftstore.New(raftstore.Config{
		NodeID: 1, TickInterval: 10 * time.Millisecond, Apply: applyKV, Logger: logger,
		StallTimeout: 300 * time.Millisecond, DataDir: dir,
	}, db, rlog, tr)
	if err != nil {
		t.Fatal(err)
	}
	d := &storage.Descriptor{Group: 0, NextID: 2, Replicas: []storage.Replica{{ID: 1, Node: 1}}}
	if err := eng.AddReplica(0, &raftstore.Bootstrap{Desc: d}); err != nil {
		t.Fatal(err)
	}
	eng.Start()
	t.Cleanup(func() {
		disk.Set(faultfs.Fault{}) // release the stuck sync so everything can close
		eng.Stop()
		tr.Stop()
		_ = db.Close()
		_ = rlog.Close()
		_ = disk.Close()
	})
	waitFor(t, "a leader", 10*time.Second, func() bool { return eng.Leader(0) == 1 })
	if _, err := eng.Propose(context.Background(), 0, &raftstore.Request{Origin: 1, Seq: 1, Args: toArgs([]string{"set", "a", "1"})}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(eng.LastCycle()); d > time.Second {
		t.Fatalf("last cycle %v ago on a healthy engine", d)
	}

	disk.Set(faultfs.Fault{SyncDelay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err = eng.Propose(ctx, 0, &raftstore.Request{Origin: 1, Seq: 2, Args: toArgs([]string{"set", "b", "2"})})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("propose on a hung disk: err = %v after %v, want an answer when the node fences", err, time.Since(start))
	}
	select {
	case <-eng.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the stall")
	}
	if e := eng.Err(); e == nil || !strings.Contains(e.Error(), "stuck") || !strings.Contains(e.Error(), dir) {
		t.Fatalf("Err() = %v, want the stall naming the data dir", e)
	}
	if d := time.Since(eng.LastCycle()); d < 300*time.Millisecond {
		t.Errorf("last cycle %v ago while stuck", d)
	}
	stopped := make(chan struct{})
	go func() { eng.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop blocked on a loop stuck in storage")
	}
}

// TestFenceStopsTheLoop: a fault found outside the loop (a corrupt file)
// stops the engine: Done closes, Err says why, proposals are refused.
func TestFenceStopsTheLoop(t *testing.T) {
	c := newCluster(t, 1, 1, nil)
	n := c.leader(0)
	n.eng.Fence(errors.New("corrupt file 000018.sst"))
	select {
	case <-n.eng.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after Fence")
	}
	if err := n.eng.Err(); err == nil || !strings.Contains(err.Error(), "000018.sst") {
		t.Fatalf("Err() = %v", err)
	}
	seq++
	if _, err := n.eng.Propose(context.Background(), 0, &raftstore.Request{Origin: 1, Seq: seq, Args: toArgs([]string{"set", "a", "1"})}); err == nil {
		t.Fatal("a fenced engine accepted a write")
	}
}
