package raftstore_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/storage"
)

// TestSnapshotStagingRefusesDisorder: an incoming snapshot is written to
// disk as it arrives, span by span in key order, so pairs out of order, a
// span met twice or a key of another group refuse the snapshot; a refused
// or aborted one leaves no file behind, and the same pairs in order are
// accepted. The pairs are a real snapshot's.
func TestSnapshotStagingRefusesDisorder(t *testing.T) {
	const group = 1
	a := leaderWithWrites(t, group)
	defer a.eng.Stop()
	b := openDriven(t, 2, vfs.NewCrashableMem(), nil)
	defer b.eng.Stop()
	a.eng.ProposeChange(group, raftstore.AddLearner, 2, func(_ bool, err error) {
		if err != nil {
			t.Errorf("add learner: %v", err)
		}
	})
	var snap *pipeSnap
	for round := 0; round < 50 && snap == nil; round++ {
		a.step(t)
		for _, m := range a.tr.out {
			if m.snap != nil {
				snap = m.snap
			}
		}
		deliver(t, a, b)
		b.step(t)
		deliver(t, b, a)
	}
	if snap == nil {
		t.Fatal("the leader sent no snapshot")
	}
	var data [][2][]byte
	for _, kv := range snap.kvs {
		if lo, hi := storage.DataSpan(group); string(kv[0]) >= string(lo) && string(kv[0]) < string(hi) {
			data = append(data, kv)
		}
	}
	if len(data) < 2 {
		t.Fatalf("the snapshot holds %d user keys", len(data))
	}
	desc := snap.kvs[0]
	feed := func(kvs [][2][]byte) error {
		env := snap.env
		env.From = 1
		bld, err := b.eng.NewSnapshotBuilder(env)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range kvs {
			if err := bld.Add(kv[0], kv[1]); err != nil {
				bld.Abort()
				return err
			}
		}
		if len(staged(t, b.fs)) == 0 {
			t.Error("nothing staged on disk while receiving")
		}
		bld.Abort()
		return nil
	}
	dedupeLo, _ := storage.DedupeSpan(group)
	foreign := storage.DataKey(group+1, []byte("k0"))
	for _, c := range []struct {
		name string
		kvs  [][2][]byte
		want string
	}{
		{"reversed", append([][2][]byte{desc}, data[1], data[0]), "out of order"},
		{"repeated", append([][2][]byte{desc}, data[0], data[0]), "out of order"},
		{"a span twice", append([][2][]byte{desc}, data[0], [2][]byte{dedupeLo, nil}, data[1]), "out of order"},
		{"foreign key", append([][2][]byte{desc}, data[0], [2][]byte{foreign, []byte("v")}), "foreign key"},
		{"in order", slices.Clone(snap.kvs), ""},
	} {
		err := feed(c.kvs)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error saying %q", c.name, err, c.want)
		}
		if left := staged(t, b.fs); len(left) > 0 {
			t.Errorf("%s: files left after the abort: %v", c.name, left)
		}
	}
}
