package statemachine

import (
	"context"
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/storage"
	"github.com/kintsu/kintsu/internal/txn"
)

func args(s string) [][]byte {
	var out [][]byte
	for _, f := range strings.Fields(s) {
		out = append(out, []byte(f))
	}
	return out
}

// apply runs one committed command as the engine does: Classify once,
// then Apply with its spec, a fresh index per entry.
func apply(t *testing.T, m *memStore, group uint64, cmd string) string {
	t.Helper()
	a := args(cmd)
	spec, _ := Classify(group, a)
	m.index++
	m.refused = false
	out, err := Apply(group, m, spec, a, nil)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(out)
}

func read(t *testing.T, m *memStore, group uint64, cmd string) string {
	t.Helper()
	a := args(cmd)
	spec, _ := Classify(group, a)
	out, err := Read(m, group, spec, a)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(out)
}

func TestDataCommands(t *testing.T) {
	m := newMemStore()
	if got := apply(t, m, 0, "SET k v"); got != "+OK\r\n" {
		t.Fatalf("SET: %q", got)
	}
	if got := read(t, m, 0, "GET k"); got != "$1\r\nv\r\n" {
		t.Fatalf("GET: %q", got)
	}
	if got := read(t, m, 0, "SET k w"); !strings.HasPrefix(got, "-ERR not a read command") {
		t.Fatalf("a write as a read: %q", got)
	}
	if got := apply(t, m, 0, "NOSUCH k"); !strings.HasPrefix(got, "-ERR unknown command") {
		t.Fatalf("unknown: %q", got)
	}
}

// Only writes keep their reply for retries; the metadata group keeps all.
func TestClassifyDedupe(t *testing.T) {
	for _, tc := range []struct {
		group uint64
		cmd   string
		keep  bool
	}{
		{0, "SET k v", true}, {0, "GET k", false}, {0, "txn.prepare x", true}, {0, "kintsu.cut a 10", true},
		{0, "nosuch", true}, {MetaGroup, "GET k", true}, {MetaGroup, "kintsu.node.heartbeat 1 a b", true},
	} {
		if _, keep := Classify(tc.group, args(tc.cmd)); keep != tc.keep {
			t.Errorf("Classify(%d, %s) keeps %v, want %v", tc.group, tc.cmd, keep, tc.keep)
		}
	}
}

// groups is a cluster of data partitions in memory whose commands go
// through Classify and Apply, for the transaction coordinator.
type groups map[uint64]*memStore

func (gs groups) Write(_ context.Context, g uint64, a [][]byte) ([]byte, error) {
	m := gs[g]
	spec, _ := Classify(g, a)
	m.index++
	m.refused = false
	return Apply(g, m, spec, a, nil)
}

func (gs groups) Read(_ context.Context, g uint64, a [][]byte) ([]byte, error) {
	spec, _ := Classify(g, a)
	return Read(gs[g], g, spec, a)
}

type stop struct{}

// A plain command that meets a transaction's lock changes nothing and
// answers the holders; a read meets a writer's lock too.
func TestLockedKeyRefusesPlainWrite(t *testing.T) {
	gs := groups{0: newMemStore(), 1: newMemStore()}
	part := func(k []byte) uint64 { return uint64(k[0]-'a') % 2 }
	// A transaction whose coordinator stops after every PREPARE: its
	// locks on a1 and b1 stay.
	c := txn.NewCoordinator(txn.Config{Origin: 1, Partition: part, Heartbeat: -1, Sequential: true, Go: func(f func()) { f() },
		Failpoint: func(name string) {
			if name == api.FailAfterPrepare {
				panic(stop{})
			}
		}}, gs)
	func() {
		defer func() {
			if _, ok := recover().(stop); !ok {
				t.Fatal("the transaction did not stop after its prepares")
			}
		}()
		cmd, err := command.Decode(args("MSET a1 x b1 y"), part)
		if err != nil {
			t.Fatal(err)
		}
		c.Run(context.Background(), cmd)
	}()
	m := gs[0]
	got := apply(t, m, 0, "SET a1 new")
	if hs, ok := txn.ParseLocked([]byte(got)); !ok || len(hs) != 1 || !m.refused {
		t.Fatalf("SET on a locked key answered %q (refused %v)", got, m.refused)
	}
	if _, ok := txn.ParseLocked([]byte(read(t, m, 0, "GET a1"))); !ok {
		t.Fatal("GET of a write-locked key did not meet the lock")
	}
	if _, ok, _ := m.Get([]byte("a1")); ok {
		t.Fatal("the locked key was written")
	}
}

// While a restore loads a partition, client writes are refused with
// LOADING, and the restore's own entries go on.
func TestRestoreRefusesClientWrites(t *testing.T) {
	m := newMemStore()
	if got := apply(t, m, 0, "kintsu.restore.begin b1"); got != "+OK\r\n" {
		t.Fatalf("begin: %q", got)
	}
	for _, cmd := range []string{"SET k v", "DEL k", "txn.prepare x", "txn.exec1 x"} {
		if got := apply(t, m, 0, cmd); !failure.Loading.Is([]byte(got)) {
			t.Errorf("%s while restoring: %q", cmd, got)
		}
	}
	if got := read(t, m, 0, "GET k"); got != "$-1\r\n" {
		t.Errorf("a read while restoring: %q", got)
	}
	if got := apply(t, m, 0, "kintsu.restore.end b1 0"); got != "+OK\r\n" {
		t.Fatalf("end: %q", got)
	}
	if got := apply(t, m, 0, "SET k v"); got != "+OK\r\n" {
		t.Fatalf("SET after the restore: %q", got)
	}
}

func TestRegistry(t *testing.T) {
	m := newMemStore()
	m.loose = true
	steps := []struct{ cmd, want string }{
		{"kintsu.node.join 4 127.0.0.1:1", "+OK"},
		{"kintsu.node.join 4 127.0.0.1:1", "+OK"}, // a retry
		{"kintsu.node.join 4 127.0.0.1:2", "-ERR node id 4 is already a member at 127.0.0.1:1"},
		{"kintsu.node.heartbeat 4 r h", "+OK"},
		{"kintsu.node.join 4 127.0.0.1:1", "-ERR node id 4 is already a member that ran before"},
		{"kintsu.node.state 4 removed", "+OK"},
		{"kintsu.node.heartbeat 4 r h", "-" + ErrNodeRemoved},
		{"kintsu.node.state 4 up", "-ERR node 4 was removed; that is final"},
		{"kintsu.node.state 9 up", "-ERR no node 9 in the cluster"},
		{"kintsu.node.join 18446744073709551615 x", "-ERR bad node id"},
	}
	for _, s := range steps {
		if got := apply(t, m, MetaGroup, s.cmd); !strings.HasPrefix(got, s.want) {
			t.Errorf("%s: %q, want %q...", s.cmd, got, s.want)
		}
	}
}

// The restore mark's table is the engine's (storage.RestoreMark): the
// engine keeps it when it clears a partition.
func TestRestoreMarkTable(t *testing.T) {
	if TableRestoreMark != storage.RestoreMark {
		t.Fatalf("TableRestoreMark %q, storage.RestoreMark %q", TableRestoreMark, storage.RestoreMark)
	}
}

// Internal operations are matched by their exact name, as every earlier
// version matched them, so replicas of two versions answer any spelling
// alike; kv's kintsu.expired was a client command once and is looked up in
// any case, as it always was.
func TestInternalOperationsByExactName(t *testing.T) {
	m := newMemStore()
	apply(t, m, 0, "SET a 1")
	for _, tc := range []struct{ cmd, want string }{
		{"TXN.COMMIT x", "-ERR unknown command 'TXN.COMMIT', with args beginning with: 'x' \r\n"},
		{"txn.nosuch x", "-KINTSU.BADOP\r\n"},
		{"KINTSU.CUT b1 10", "-ERR unknown command 'KINTSU.CUT', with args beginning with: 'b1' '10' \r\n"},
		{"KINTSU.EXPIRED a", ":0\r\n"},
	} {
		if got := apply(t, m, 0, tc.cmd); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.cmd, got, tc.want)
		}
	}
	if len(m.cuts) != 0 {
		t.Errorf("a misspelled cut was taken: %v", m.cuts)
	}
}

// TestPartitionRecordKeepsItsRange: recording a partition's replicas
// changes only them; a proposer's older slot range is not written back.
func TestPartitionRecordKeepsItsRange(t *testing.T) {
	m := newMemStore()
	m.loose = true
	stored := `{"id":3,"slot_start":100,"slot_end":199,"replicas":[1,2,3]}`
	if err := m.Put(PartKey(3), []byte(stored), true); err != nil {
		t.Fatal(err)
	}
	if got := apply(t, m, MetaGroup, `kintsu.part.set {"id":3,"slot_start":0,"slot_end":4095,"replicas":[2,3,4],"learners":[5]}`); got != "+OK\r\n" {
		t.Fatalf("reply %q", got)
	}
	b, _, _ := m.Get(PartKey(3))
	if want := `{"id":3,"slot_start":100,"slot_end":199,"replicas":[2,3,4],"learners":[5]}`; string(b) != want {
		t.Fatalf("record %s, want %s", b, want)
	}
	if got := apply(t, m, MetaGroup, `kintsu.part.set {"id":9,"replicas":[1]}`); !strings.HasPrefix(got, "-ERR unknown partition") {
		t.Fatalf("an unknown partition: %q", got)
	}
}
