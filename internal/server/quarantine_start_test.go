package server

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/storage"
)

// damageReplicaState stops node i and leaves it with a corrupt sstable
// holding exactly group's applied state and descriptor (the keys a start
// reads first, before any replica loads). It returns the node's replica
// id of every group before.
func damageReplicaState(t *testing.T, tc *testCluster, i int, group uint64) map[uint64]uint64 {
	t.Helper()
	span := storage.ReplicaSpans(group)[0] // the raft span: applied state, descriptor
	return damageSpan(t, tc, i, span[0], span[1])
}

// damageSpan stops node i and leaves it with a corrupt sstable holding
// every key of [lo, hi): they are copied into a file of their own,
// ingested above the originals, and a byte of its first data block is
// flipped. It returns the node's replica id of every group before.
func damageSpan(t *testing.T, tc *testCluster, i int, lo, hi []byte) map[uint64]uint64 {
	t.Helper()
	n := tc.nodes[i]
	ids := map[uint64]uint64{}
	for _, st := range n.eng.Status() {
		ids[st.Group] = st.ReplicaID
	}
	if err := n.Stop(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	dir := tc.cfgs[i].DataDir
	// No compaction may rewrite the ingested file before it is damaged.
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatWALSyncChunks, Logger: quietLogger{}, DisableAutomaticCompactions: true})
	if err != nil {
		t.Fatal(err)
	}
	span := [2][]byte{lo, hi}
	ext := filepath.Join(t.TempDir(), "state.sst")
	f, err := vfs.Default.Create(ext, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), sstable.WriterOptions{TableFormat: db.FormatMajorVersion().MaxTableFormat()})
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: span[0], UpperBound: span[1]})
	if err != nil {
		t.Fatal(err)
	}
	var keys int
	for it.First(); it.Valid(); it.Next() {
		if err := w.Set(it.Key(), it.Value()); err != nil {
			t.Fatal(err)
		}
		keys++
	}
	if err := errors.Join(it.Close(), w.Close()); err != nil {
		t.Fatal(err)
	}
	if keys < 2 {
		t.Fatalf("[%x, %x) holds %d keys", lo, hi, keys)
	}
	if err := db.Ingest(ctx5(t), []string{ext}); err != nil {
		t.Fatal(err)
	}
	var file string
	levels, err := db.SSTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, lvl := range levels {
		for _, sst := range lvl {
			if string(sst.Smallest.UserKey) >= string(span[0]) && string(sst.Largest.UserKey) < string(span[1]) {
				file = filepath.Join(dir, sst.BackingSSTNum.String()+".sst")
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if file == "" {
		t.Fatal("the ingested file is not in the LSM")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[8] ^= 0xff // inside the first (only) data block
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return ids
}

// checkOthersUntouched fails unless node n still hosts every group of ids
// but group under the same replica id.
func checkOthersUntouched(t *testing.T, n *Node, ids map[uint64]uint64, group uint64) {
	t.Helper()
	for g, id := range ids {
		if g == group {
			continue
		}
		if st, ok := n.eng.GroupStatus(g); !ok || st.ReplicaID != id {
			t.Errorf("group %d on node %d: replica %d (%v), want the old %d untouched", g, n.cfg.NodeID, st.ReplicaID, ok, id)
		}
	}
}

// TestDamageMetAtStartQuarantinesOnlyItsReplica (issue 15, deliverable
// 7): a corrupt file met while the node starts, holding one partition's
// descriptor and applied state, no longer fails the start (before, the
// node fenced itself and refused every start until wiped). The node
// starts with its other replicas; the damaged one, whose id the file
// held, gets its id from the group's leader, tombstoned, and is rebuilt
// under a new id; nothing acknowledged is lost.
func TestDamageMetAtStartQuarantinesOnlyItsReplica(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.HeartbeatInterval = 100 * time.Millisecond })
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), MaxRetries: -1})
	acked := writeKeys(t, c, 500)
	c.Close()
	const group = 3
	ids := damageReplicaState(t, tc, 1, group)
	tc.restart(1)
	n := tc.nodes[1]
	if _, err := os.Stat(filepath.Join(tc.cfgs[1].DataDir, storage.CorruptFile)); err == nil {
		t.Fatal("the corruption was recorded as the whole node's")
	}
	waitRebuilt(t, n, tc.nodes[0], group, ids[group])
	if tomb := n.eng.Tombstone(group); tomb < ids[group] {
		t.Fatalf("tombstone %d below the damaged replica's id %d", tomb, ids[group])
	}
	checkOthersUntouched(t, n, ids, group)
	checkServing(t, tc, 1, acked)
}

// checkServing reads every acknowledged key through node i and checks
// that it is ready and not fenced.
func checkServing(t *testing.T, tc *testCluster, i int, acked map[string]string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(i), MaxRetries: -1})
	defer c.Close()
	checkAcked(t, c, acked)
	if n := tc.nodes[i]; !n.Ready() || n.Err() != nil {
		t.Fatalf("node %d after the rebuild: %+v, %v", n.cfg.NodeID, n.Health(), n.Err())
	}
}

// TestDamageAtStartWaitsForItsLeader: the damage is met at start while
// the partition's peers are down, so nothing confirms that they keep a
// quorum without this copy. The node starts and serves nothing of the
// partition, deletes nothing, and a second start does the same. Once the
// peers are back, the leader confirms, the copy is excised, its id learned
// and tombstoned (the old id is never hosted again), the replica rebuilt,
// and nothing acknowledged is lost.
func TestDamageAtStartWaitsForItsLeader(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.HeartbeatInterval = 100 * time.Millisecond })
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), MaxRetries: -1})
	acked := writeKeys(t, c, 500)
	c.Close()
	for _, i := range []int{0, 2} {
		if err := tc.nodes[i].Stop(ctx5(t)); err != nil {
			t.Fatal(err)
		}
	}
	const group = 5
	ids := damageReplicaState(t, tc, 1, group)
	dir := tc.cfgs[1].DataDir
	for round := range 2 {
		tc.restart(1)
		n := tc.nodes[1]
		waitFor(t, "health naming the partition", 10*time.Second, func() bool {
			return slices.Contains(n.Health().Rebuilding, group)
		})
		if n.eng.HasGroup(group) {
			t.Fatalf("start %d: the damaged replica is hosted", round+1)
		}
		if rec, err := storage.ReadQuarantine(nil, dir); err != nil || len(rec) != 0 {
			t.Fatalf("start %d: recorded (and deleted) before a leader confirmed: %+v, %v", round+1, rec, err)
		}
		checkOthersUntouched(t, n, ids, group)
		if err := n.Stop(ctx5(t)); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{0, 1, 2} {
		tc.restart(i)
	}
	waitRebuiltNeverOld(t, tc, 1, group, ids[group])
	c2 := redis.NewClient(&redis.Options{Addr: tc.respAddr(1), MaxRetries: -1})
	defer c2.Close()
	checkAcked(t, c2, acked)
	if rec, err := storage.ReadQuarantine(nil, dir); err != nil || len(rec) != 0 {
		t.Fatalf("record after the rebuild: %+v, %v", rec, err)
	}
}

// waitRebuiltNeverOld waits until node i hosts group rebuilt under a new
// id, failing if it ever hosts it under oldID or below: a leader's
// messages to the old id must create nothing before it is tombstoned.
func waitRebuiltNeverOld(t *testing.T, tc *testCluster, i int, group, oldID uint64) {
	t.Helper()
	n := tc.nodes[i]
	waitFor(t, "partition rebuilt under a new id", 60*time.Second, func() bool {
		st, ok := n.eng.GroupStatus(group)
		if ok && st.ReplicaID <= oldID {
			t.Fatalf("the damaged replica's id %d came back (replica %d)", oldID, st.ReplicaID)
		}
		return ok && st.AppliedIndex > 0
	})
	tc.waitReady()
	waitRebuilt(t, n, tc.nodes[(i+1)%len(tc.nodes)], group, oldID)
	if tomb := n.eng.Tombstone(group); tomb < oldID {
		t.Fatalf("tombstone %d below the damaged replica's id %d", tomb, oldID)
	}
}

// TestUnknownIDHeldAfterCrash: a node that crashed after excising a
// replica whose id it did not know, before its leader named the id, holds
// the group at the next start (the record says the id is unknown), so the
// leader's messages to the old id create nothing; the id is then learned
// and tombstoned and the replica rebuilt under a new one.
func TestUnknownIDHeldAfterCrash(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.HeartbeatInterval = 100 * time.Millisecond })
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), MaxRetries: -1})
	acked := writeKeys(t, c, 500)
	c.Close()
	const group = 6
	n := tc.nodes[1]
	st, ok := n.eng.GroupStatus(group)
	if !ok {
		t.Fatalf("node 2 hosts no replica of group %d", group)
	}
	// Every node stops, and node 2 starts first: the leader elected when
	// its peers come back sends to the old id before it can name it.
	for _, x := range tc.nodes {
		if err := x.Stop(ctx5(t)); err != nil {
			t.Fatal(err)
		}
	}
	// What the driver leaves at that crash: the record, then the spans
	// deleted and excised, no tombstone.
	dir := tc.cfgs[1].DataDir
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatWALSyncChunks, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := storage.WriteQuarantine(nil, dir, []storage.Quarantined{{Group: group, IDUnknown: true}}); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(storage.FinishQuarantine(ctx5(t), db, nil, dir), db.Close()); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 0, 2} {
		tc.restart(i)
	}
	waitRebuiltNeverOld(t, tc, 1, group, st.ReplicaID)
	c2 := redis.NewClient(&redis.Options{Addr: tc.respAddr(1), MaxRetries: -1})
	defer c2.Close()
	checkAcked(t, c2, acked)
}

// TestDamagedFileOfEveryPartitionRebuildsThemAll: a corrupt file holding
// user data of every partition (as an L0 file just flushed does) no longer
// fences the node: every replica it holds is quarantined and rebuilt in
// place from its peers, the node stays up, and nothing acknowledged is
// lost. Before, more than 4 partitions in one file fenced the node. (A
// compaction usually meets the file right after the restart, while the
// replicas load; otherwise the writes below do.)
func TestDamagedFileOfEveryPartitionRebuildsThemAll(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.HeartbeatInterval = 100 * time.Millisecond })
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), MaxRetries: -1})
	defer c.Close()
	acked := writeKeys(t, c, 300)
	parts := uint64(tc.cfgs[1].Partitions)
	lo, _ := storage.DataSpan(0)
	_, hi := storage.DataSpan(parts - 1)
	ids := damageSpan(t, tc, 1, lo, hi)
	tc.restart(1)
	tc.waitReady()
	n := tc.nodes[1]
	// Rewriting every key makes every replica read its old value: node 2
	// meets the damage in every partition.
	for k := range acked {
		v := "new-" + k
		setRetrying(t, c, k, v)
		acked[k] = v
	}
	if err := n.Err(); err != nil {
		t.Fatalf("node 2 fenced itself: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tc.cfgs[1].DataDir, storage.CorruptFile)); err == nil {
		t.Fatal("the corruption was recorded as the whole node's")
	}
	for g := range parts {
		waitRebuilt(t, n, tc.nodes[0], g, ids[g])
	}
	c2 := redis.NewClient(&redis.Options{Addr: tc.respAddr(1), MaxRetries: -1})
	defer c2.Close()
	checkAcked(t, c2, acked)
}

// TestDamageAtStartOfTheOnlyCopyFences: with one node (3 replicas asked
// for, 1 placed), damage met at start in a partition's state must not
// delete that partition's only copy: nothing confirms a quorum elsewhere,
// and the cluster map says there is none, so the node fences itself (as
// before the quarantine) and its data stays on disk for a restore.
func TestDamageAtStartOfTheOnlyCopyFences(t *testing.T) {
	tc := startCluster(t, 1, nil)
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), MaxRetries: -1})
	writeKeys(t, c, 200)
	c.Close()
	const group = 2
	damageReplicaState(t, tc, 0, group)
	cfg := tc.cfgs[0]
	cfg.Listeners = &Listeners{Peer: listenOn(t, cfg.PeerAddr), RESP: listenOn(t, cfg.RESPAddr), HTTP: listenOn(t, cfg.HTTPAddr)}
	n, err := Start(cfg)
	if err == nil {
		select {
		case <-n.Failed():
		case <-time.After(20 * time.Second):
			t.Fatal("the node neither fenced itself nor refused the start")
		}
		_ = n.Stop(ctx5(t))
	}
	tc.nodes = nil
	if rec, err := storage.ReadQuarantine(nil, cfg.DataDir); err != nil || len(rec) != 0 {
		t.Fatalf("the only copy was quarantined: %+v, %v", rec, err)
	}
	// The damaged file stays: no compaction may meet it here.
	db, err := pebble.Open(cfg.DataDir, &pebble.Options{
		FormatMajorVersion: pebble.FormatWALSyncChunks, Logger: quietLogger{}, DisableAutomaticCompactions: true,
		EventListener: &pebble.EventListener{DataCorruption: func(pebble.DataCorruptionInfo) {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lo, hi := storage.DataSpan(group)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	for it.First(); it.Valid(); it.Next() {
		keys++
	}
	if err := it.Close(); err != nil || keys == 0 {
		t.Fatalf("partition %d's data after the fence: %d keys, %v", group, keys, err)
	}
}
