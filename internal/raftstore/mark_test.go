package raftstore_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kintsu/kintsu/internal/raftlog"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/storage"
	"github.com/kintsu/kintsu/internal/transport"
)

// solo is a single-replica engine on a real data dir.
type solo struct {
	db   *pebble.DB
	rlog *raftlog.Log
	tr   *transport.Transport
	eng  *raftstore.Engine
}

func openSolo(t *testing.T, dir string, fresh bool) (*solo, error) {
	t.Helper()
	db, err := storage.Open(storage.Options{Dir: dir})
	if err != nil {
		return nil, err
	}
	rlog, err := raftstore.OpenLog(nil, dir, 0, nil)
	if err != nil {
		db.Close()
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tr := transport.New(1, logger)
	eng, err := raftstore.New(raftstore.Config{NodeID: 1, TickInterval: 10 * time.Millisecond, Apply: applyKV, Logger: logger, DataDir: dir}, db, rlog, tr)
	if err != nil {
		tr.Stop()
		db.Close()
		rlog.Close()
		return nil, err
	}
	if fresh {
		d := &storage.Descriptor{Group: 0, NextID: 2, Replicas: []storage.Replica{{ID: 1, Node: 1}}}
		err = eng.AddReplica(0, &raftstore.Bootstrap{Desc: d})
	} else {
		err = eng.LoadAll()
	}
	if err == nil {
		err = eng.CheckDurable()
	}
	if err != nil {
		tr.Stop()
		db.Close()
		rlog.Close()
		return nil, err
	}
	eng.Start()
	return &solo{db: db, rlog: rlog, tr: tr, eng: eng}, nil
}

func (s *solo) close() {
	s.eng.Stop()
	s.tr.Stop()
	_ = s.db.Close()
	_ = s.rlog.Close()
}

// TestStartBehindDurableMarkIsRefused: the raft log's last segment cut
// short (synced records gone, which the log alone cannot tell from a torn
// tail) leaves
// the replica's raft state behind what the node had synced; the start is
// refused, naming the partition and what was lost. Before the mark, the
// node started silently with its state rolled back (audit R-D2).
func TestStartBehindDurableMarkIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := openSolo(t, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a leader", 10*time.Second, func() bool { return s.eng.Leader(0) == 1 })
	for i := range 300 {
		args := toArgs([]string{"set", "k" + string(rune('a'+i%26)) + strings.Repeat("x", i%7), strings.Repeat("v", 1000)})
		if _, err := s.eng.Propose(context.Background(), 0, &raftstore.Request{Origin: 1, Seq: uint64(i + 1), Args: args}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := s.eng.GroupStatus(0)
	// The mark lags a little: a commit index that only advanced is
	// written unsynced, and the mark claims only what a synced write made
	// durable.
	waitFor(t, "the mark to record the commit index", 10*time.Second, func() bool {
		entries, _, _ := storage.ReadMark(vfs.Default, dir)
		return len(entries) == 1 && entries[0].Commit+5 >= st.CommitIndex
	})
	s.close()

	logs, _ := filepath.Glob(filepath.Join(dir, raftstore.LogDir, "*.log"))
	sort.Strings(logs)
	fi, err := os.Stat(logs[len(logs)-1])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(logs[len(logs)-1], fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	s, err = openSolo(t, dir, false)
	if err == nil {
		st, _ := s.eng.GroupStatus(0)
		s.close()
		t.Fatalf("started with the raft log cut in half (commit index %d)", st.CommitIndex)
	}
	if !errors.Is(err, raftstore.ErrBehindMark) || !strings.Contains(err.Error(), "partition 0:") {
		t.Fatalf("refusal: %v", err)
	}
	t.Logf("refusal: %v", err)
	// The refused start wrote nothing that would let the next one pass:
	// the raft log's load-time repair (a log ending before the applied
	// state) must not paper over the loss.
	if s, err = openSolo(t, dir, false); err == nil {
		s.close()
		t.Fatal("a second start after the refusal went through")
	}
}

// TestCleanRestartPassesDurableMark: a clean stop and start passes the
// check (no false alarm), and so does a restart after more writes.
func TestCleanRestartPassesDurableMark(t *testing.T) {
	dir := t.TempDir()
	for round := range 3 {
		s, err := openSolo(t, dir, round == 0)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		waitFor(t, "a leader", 10*time.Second, func() bool { return s.eng.Leader(0) == 1 })
		for i := range 20 {
			if _, err := s.eng.Propose(context.Background(), 0, &raftstore.Request{Origin: uint64(round + 1), Seq: uint64(i + 1), Args: toArgs([]string{"set", "k", "v"})}); err != nil {
				t.Fatal(err)
			}
		}
		s.close()
		if entries, ok, err := storage.ReadMark(vfs.Default, dir); !ok || err != nil || len(entries) != 1 {
			t.Fatalf("round %d: mark %v %v %v", round, entries, ok, err)
		}
	}
}
