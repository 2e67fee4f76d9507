package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/storage"
)

// damaged is what damageOnePartition did to a node.
type damaged struct {
	group  uint64            // the partition whose data the file holds
	file   string            // the damaged sstable
	keys   []string          // the user keys the file holds
	oldIDs map[uint64]uint64 // the node's replica id of every group before
}

// writeKeys SETs n keys with 1 KiB values (random: incompressible, so
// that sstables hold few keys each) through c and returns what was
// acknowledged.
func writeKeys(t *testing.T, c *redis.Client, n int) map[string]string {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	value := func(j int) string {
		b := make([]byte, 1000)
		for i := range b {
			b[i] = 'a' + byte(rng.IntN(26))
		}
		return fmt.Sprint(j, string(b))
	}
	acked := map[string]string{}
	for i := 0; i < n; i += 100 {
		pipe := c.Pipeline()
		for j := i; j < min(i+100, n); j++ {
			pipe.Set(ctx5(t), fmt.Sprint("q", j), value(j), 0)
		}
		cmds, err := pipe.Exec(ctx5(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range cmds {
			args := cmd.Args()
			acked[args[1].(string)] = args[2].(string)
		}
	}
	return acked
}

// damageOnePartition stops node i, lays its LSM out in small files (as a
// node's compactions do once it holds more data), flips a byte in the
// first data block of a file holding only one partition's user data, and
// starts the node again.
func damageOnePartition(t *testing.T, tc *testCluster, i int, acked map[string]string) damaged {
	t.Helper()
	n := tc.nodes[i]
	d := damaged{oldIDs: map[uint64]uint64{}}
	for _, st := range n.eng.Status() {
		d.oldIDs[st.Group] = st.ReplicaID
	}
	if err := n.Stop(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	cfg := tc.cfgs[i]
	opts := &pebble.Options{FormatMajorVersion: pebble.FormatWALSyncChunks, Logger: quietLogger{}}
	for l := range opts.TargetFileSizes {
		opts.TargetFileSizes[l] = 32 << 10
	}
	db, err := pebble.Open(cfg.DataDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Writing the user data again, byte for byte, makes the compaction
	// rewrite it (a file nothing overlaps would only be moved down).
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{0x02}, UpperBound: []byte{0x03}})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	for it.First(); it.Valid(); it.Next() {
		_ = b.Set(slices.Clone(it.Key()), slices.Clone(it.Value()), nil)
	}
	if err := errors.Join(it.Close(), b.Commit(pebble.Sync), db.Flush()); err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
		t.Fatal(err)
	}
	levels, err := db.SSTables()
	if err != nil {
		t.Fatal(err)
	}
	var lo, hi []byte
	for _, lvl := range levels {
		for _, f := range lvl {
			s, l := f.Smallest.UserKey, f.Largest.UserKey
			if len(s) < 9 || len(l) < 9 || !bytes.Equal(s[:9], l[:9]) {
				continue
			}
			g := storage.GroupsIn(s, l)
			if s[0] != 0x02 || g.All || g.First >= uint64(cfg.Partitions) {
				continue
			}
			d.group, d.file, lo, hi = g.First, filepath.Join(cfg.DataDir, f.FileNum.String()+".sst"), s, l
			break
		}
		if d.file != "" {
			break
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if d.file == "" {
		t.Fatal("no sstable holds a single partition's data")
	}
	for k := range acked {
		if dk := storage.DataKey(d.group, []byte(k)); n.partitionOf([]byte(k)) == d.group && bytes.Compare(dk, lo) >= 0 && bytes.Compare(dk, hi) <= 0 {
			d.keys = append(d.keys, k)
		}
	}
	slices.Sort(d.keys)
	if len(d.keys) == 0 {
		t.Fatal("the damaged file holds no acknowledged key")
	}
	sst, err := os.ReadFile(d.file)
	if err != nil {
		t.Fatal(err)
	}
	sst[100] ^= 0xff
	if err := os.WriteFile(d.file, sst, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("damaged %s: partition %d, keys %s..%s", filepath.Base(d.file), d.group, d.keys[0], d.keys[len(d.keys)-1])
	tc.restart(i)
	return d
}

// quietLogger keeps Pebble's replay chatter out of the test's output.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)         {}
func (quietLogger) Errorf(string, ...any)        {}
func (quietLogger) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

// restart starts node i again on its addresses.
func (tc *testCluster) restart(i int) {
	tc.t.Helper()
	cfg := tc.cfgs[i]
	t := tc.t.(*testing.T)
	cfg.Listeners = &Listeners{Peer: listenOn(t, cfg.PeerAddr), RESP: listenOn(t, cfg.RESPAddr), HTTP: listenOn(t, cfg.HTTPAddr)}
	n, err := Start(cfg)
	if err != nil {
		t.Fatalf("restart node %d: %v", cfg.NodeID, err)
	}
	tc.nodes[i] = n
}

// waitRebuilt waits until node n hosts a voting replica of group with a
// new id, holding the same data as peer's, and reports nothing being
// rebuilt.
func waitRebuilt(t *testing.T, n, peer *Node, group, oldID uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("partition %d rebuilt on node %d", group, n.cfg.NodeID), 60*time.Second, func() bool {
		st, ok := n.eng.GroupStatus(group)
		return ok && st.ReplicaID > oldID && st.AppliedIndex > 0 && slices.Contains(st.Nodes, n.cfg.NodeID) && len(n.Health().Rebuilding) == 0
	})
	scan := func(x *Node) map[string]string {
		m := map[string]string{}
		if err := x.eng.ScanData(group, nil, func(k, v []byte) bool { m[string(k)] = string(v); return true }); err != nil {
			t.Fatalf("scan partition %d on node %d: %v", group, x.cfg.NodeID, err)
		}
		return m
	}
	waitFor(t, "the rebuilt replica's data equal to its peer's", 20*time.Second, func() bool {
		a, b := scan(n), scan(peer)
		if len(a) != len(b) {
			return false
		}
		for k, v := range b {
			if a[k] != v {
				return false
			}
		}
		return true
	})
}

// checkAcked reads every acknowledged key through c.
func checkAcked(t *testing.T, c *redis.Client, acked map[string]string) {
	t.Helper()
	for k, want := range acked {
		got, err := c.Get(ctx5(t), k).Result()
		if err != nil || got != want {
			t.Fatalf("acknowledged key %s: got %.20q, %v; want %.20q", k, got, err, want)
		}
	}
}

// setRetrying SETs k until it is acknowledged (a write may meet the
// partition's leader being taken out of service).
//
// The SET keeps the key's TTL (KEEPTTL), so every replica reads the old
// value when it applies it: a plain SET is a blind write, which reads
// nothing, and would meet damage only if a compaction happened to.
func setRetrying(t *testing.T, c *redis.Client, k, v string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := c.SetArgs(ctx5(t), k, v, redis.SetArgs{KeepTTL: true}).Err()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("SET %s: %v", k, err)
		}
		time.Sleep(20 * time.Millisecond) // retrying a refused write, with a deadline
	}
}

// TestCorruptSSTableQuarantinesOnlyItsReplica (issue 15, deliverable 7):
// a corrupt sstable holding one partition's data takes only that
// partition's replica out of service when a write meets it; the node
// stays up and keeps its other replicas, the damaged file is gone from
// the data dir, and the cluster rebuilds the replica under a new id with
// its peers' data; every acknowledged write is there. Before, the node
// fenced itself and refused every start.
func TestCorruptSSTableQuarantinesOnlyItsReplica(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.HeartbeatInterval = 100 * time.Millisecond })
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), MaxRetries: -1})
	defer c.Close()
	acked := writeKeys(t, c, 2000)
	d := damageOnePartition(t, tc, 1, acked)
	tc.waitReady()
	n := tc.nodes[1]

	// Rewriting the damaged file's keys makes every replica read them
	// (setRetrying keeps their TTLs): node 2 meets the damage.
	start := time.Now()
	for _, k := range d.keys {
		v := "new-" + k
		setRetrying(t, c, k, v)
		acked[k] = v
	}
	waitFor(t, "the damaged file removed from the data dir", 30*time.Second, func() bool {
		_, err := os.Stat(d.file)
		return os.IsNotExist(err)
	})
	if err := n.Err(); err != nil {
		t.Fatalf("node 2 fenced itself: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tc.cfgs[1].DataDir, storage.CorruptFile)); err == nil {
		t.Fatal("the corruption was recorded as the whole node's")
	}
	waitRebuilt(t, n, tc.nodes[0], d.group, d.oldIDs[d.group])
	st, _ := n.eng.GroupStatus(d.group)
	t.Logf("partition %d rebuilt on node 2 as replica %d (was %d) %v after the first write that met the damage",
		d.group, st.ReplicaID, d.oldIDs[d.group], time.Since(start).Round(time.Millisecond))
	checkOthersUntouched(t, n, d.oldIDs, d.group)
	// Node 2 serves throughout, every partition included.
	checkServing(t, tc, 1, acked)
}

// TestQuarantineSurvivesRestart: the damage is met while the partition
// has no quorum (its peers are down), so its replica stays quarantined;
// node 2 restarted then must not bring the damaged replica back (its id
// stays tombstoned, the record is kept, /readyz names the partition); once
// the peers are back the replica is rebuilt under a new id, and nothing
// acknowledged is lost.
func TestQuarantineSurvivesRestart(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.HeartbeatInterval = 100 * time.Millisecond })
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), MaxRetries: -1})
	acked := writeKeys(t, c, 2000)
	c.Close()
	d := damageOnePartition(t, tc, 1, acked)
	for _, i := range []int{0, 2} {
		if err := tc.nodes[i].Stop(ctx5(t)); err != nil {
			t.Fatal(err)
		}
	}
	n := tc.nodes[1]
	// A read meets the damage (a leader's GET, or a scan, would).
	for _, k := range d.keys {
		_, _, _ = n.eng.Reader(d.group).Get([]byte(k))
	}
	dir := tc.cfgs[1].DataDir
	waitFor(t, "the quarantine recorded and excised", 20*time.Second, func() bool {
		rec, _ := storage.ReadQuarantine(nil, dir)
		return len(rec) > 0 && rec[0].Excised
	})
	if err := n.Err(); err != nil {
		t.Fatalf("node 2 fenced itself: %v", err)
	}
	if n.eng.HasGroup(d.group) {
		t.Fatal("the damaged replica still hosted")
	}
	waitFor(t, "health naming the partition being rebuilt", 10*time.Second, func() bool {
		return slices.Contains(n.Health().Rebuilding, int(d.group))
	})

	// Restart during the quarantine: the damaged replica stays out.
	if err := n.Stop(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	tc.restart(1)
	n = tc.nodes[1]
	if n.eng.HasGroup(d.group) {
		t.Fatal("a restart brought the damaged replica back")
	}
	if tomb := n.eng.Tombstone(d.group); tomb < d.oldIDs[d.group] {
		t.Fatalf("tombstone %d below the damaged replica's id %d", tomb, d.oldIDs[d.group])
	}
	waitFor(t, "health naming the partition being rebuilt", 10*time.Second, func() bool {
		return slices.Contains(n.Health().Rebuilding, int(d.group))
	})

	for _, i := range []int{0, 2} {
		tc.restart(i)
	}
	tc.waitReady()
	waitRebuilt(t, n, tc.nodes[0], d.group, d.oldIDs[d.group])
	c2 := redis.NewClient(&redis.Options{Addr: tc.respAddr(1), MaxRetries: -1})
	defer c2.Close()
	checkAcked(t, c2, acked)
	if rec, err := storage.ReadQuarantine(nil, dir); err != nil || len(rec) != 0 {
		t.Fatalf("record after the rebuild: %+v, %v", rec, err)
	}
}
