package e2e

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/backup"
	"github.com/kintsu/kintsu/internal/launcher"
)

const (
	accounts = 24
	balance  = 1000
)

// timedWrites writes unique keys from several clients and records when
// each write was issued and when it was acknowledged, on one clock.
type timedWrites struct {
	mu     sync.Mutex
	issued map[string]time.Time // guarded by mu
	acked  map[string]time.Time // guarded by mu
}

func (w *timedWrites) run(ctx context.Context, cl *redis.Client, prefix string) {
	for i := 0; ctx.Err() == nil; i++ {
		key := fmt.Sprintf("%s:%d", prefix, i)
		w.mu.Lock()
		w.issued[key] = time.Now()
		w.mu.Unlock()
		cctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
		err := cl.Set(cctx, key, key, 0).Err()
		cancel()
		if err == nil {
			w.mu.Lock()
			w.acked[key] = time.Now()
			w.mu.Unlock()
		}
	}
}

// transfer moves a random amount between two random accounts in one
// transaction (the accounts lie in different partitions).
func transfer(ctx context.Context, cl *redis.Client) {
	a, b := rand.IntN(accounts), rand.IntN(accounts)
	if a == b {
		return
	}
	amount := int64(rand.IntN(50))
	cctx, cancel := context.WithTimeout(ctx, 6*time.Second)
	defer cancel()
	_, _ = cl.TxPipelined(cctx, func(p redis.Pipeliner) error {
		p.DecrBy(cctx, fmt.Sprint("acct:", a), amount)
		p.IncrBy(cctx, fmt.Sprint("acct:", b), amount)
		return nil
	})
}

// TestBackupRestoreUnderBank is issue 6's acceptance: a backup taken
// under a bank workload and unique-key writers, with a node killed and
// restarted during it, restores into a cluster of another size with every
// account summing to the total, every write acknowledged before the backup
// began, and — the cut being consistent — every write acknowledged before
// any write it holds was issued. Damaged backups are refused first, and
// leave the target empty and usable.
func TestBackupRestoreUnderBank(t *testing.T) {
	src := startCluster(t, 3)
	nodes := src.Nodes()
	setup := client(nodes[0].RESPAddr)
	defer setup.Close()
	ctx := context.Background()
	init := make([]any, 0, 2*accounts)
	for i := range accounts {
		init = append(init, fmt.Sprint("acct:", i), balance)
	}
	if err := setup.MSet(ctx, init...).Err(); err != nil {
		t.Fatal(err)
	}
	// Some bulk, so that streaming takes a while; in pipelines small enough
	// to be written within the client's timeout on a busy machine.
	val := strings.Repeat("x", 2000)
	for start := 0; start < 5000; start += 250 {
		pipe := setup.Pipeline()
		for i := start; i < start+250; i++ {
			pipe.Set(ctx, fmt.Sprint("bulk:", i), val, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Hashes: their fields are sub-keys the backup must carry. "hash:old"
	// is replaced, so its first fields are leftovers the restore must not
	// bring back to life.
	fields := map[string]string{}
	for i := range 300 {
		fields[fmt.Sprint("f", i)] = fmt.Sprint("v", i)
	}
	for _, c := range [][]any{
		{"HSET", "hash:big"}, {"HSET", "hash:small", "a", "1", "b", "2"},
		{"HSET", "hash:old", "stale", "1"}, {"DEL", "hash:old"}, {"HSET", "hash:old", "fresh", "2"},
	} {
		if c[1] == "hash:big" {
			for f, v := range fields {
				c = append(c, f, v)
			}
		}
		if err := setup.Do(ctx, c...).Err(); err != nil {
			t.Fatalf("%v: %v", c[:2], err)
		}
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	w := &timedWrites{issued: map[string]time.Time{}, acked: map[string]time.Time{}}
	transfers := 0
	var tmu sync.Mutex
	for i, nd := range nodes {
		wcl, bcl := client(nd.RESPAddr), client(nd.RESPAddr)
		defer wcl.Close()
		defer bcl.Close()
		wg.Go(func() { w.run(loadCtx, wcl, fmt.Sprint("w", i)) })
		wg.Go(func() {
			for loadCtx.Err() == nil {
				transfer(loadCtx, bcl)
				tmu.Lock()
				transfers++
				tmu.Unlock()
			}
		})
	}
	waitFor(t, "the workload to get going", 30*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.acked) >= 100
	})

	dir := filepath.Join(t.TempDir(), "backup")
	began := time.Now()
	backupOut := make(chan string, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(cctx, binary, "ctl", "--http", nodes[0].HTTPAddr, "backup", "--out", dir).CombinedOutput()
		if err != nil {
			out = append(out, fmt.Sprintf("\nexit: %v", err)...)
		}
		backupOut <- string(out)
	}()
	// Kill a node as the backup starts, and bring it back.
	victim := nodes[2].ID
	if err := src.Kill(victim); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := src.Restart(victim); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	out := <-backupOut
	t.Logf("backup (node %d killed and restarted during it):\n%s", victim, out)
	if !strings.Contains(out, "written to") {
		t.Fatalf("backup failed:\n%s", out)
	}
	m, err := backup.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	finished, err := time.Parse(time.RFC3339Nano, m.Finished)
	if err != nil {
		t.Fatal(err)
	}
	if !killed.Before(finished) {
		t.Fatalf("node %d was killed at %v, after the backup finished (%v)", victim, killed, finished)
	}
	t.Logf("backup began %v; node %d killed +%v, restarted +%v; cut at %s; finished +%v",
		began.Format(time.StampMilli), victim, killed.Sub(began), restarted.Sub(began), m.CutAt, finished.Sub(began))
	stopLoad()
	wg.Wait()
	tmu.Lock()
	t.Logf("%d transfers, %d acknowledged unique writes during the run", transfers, len(w.acked))
	tmu.Unlock()
	if out := run(t, time.Minute, binary, "ctl", "backup", "verify", dir); !strings.Contains(out, "is whole") {
		t.Fatalf("verify:\n%s", out)
	}

	dst := startCluster(t, 4)
	dnodes := dst.Nodes()
	refuseDamaged(t, dir, dst)

	out = run(t, 3*time.Minute, binary, "ctl", "--http", dnodes[1].HTTPAddr, "restore", "--from", dir)
	t.Logf("restore into 4 nodes:\n%s", out)
	rcl := client(dnodes[3].RESPAddr)
	defer rcl.Close()

	var sum int64
	keys := make([]string, accounts)
	for i := range keys {
		keys[i] = fmt.Sprint("acct:", i)
	}
	vals, err := rcl.MGet(ctx, keys...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		n, err := strconv.ParseInt(fmt.Sprint(v), 10, 64)
		if err != nil {
			t.Fatalf("%s = %v after restore", keys[i], v)
		}
		sum += n
	}
	if sum != accounts*balance {
		t.Fatalf("accounts sum to %d after restore, want %d", sum, accounts*balance)
	}

	// Which unique writes came back, and the cut's real-time consistency.
	present := map[string]bool{}
	var lastIssued time.Time
	for key, at := range w.issued {
		cctx, cancel := context.WithTimeout(ctx, 6*time.Second)
		n, err := rcl.Exists(cctx, key).Result()
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			present[key] = true
			if at.After(lastIssued) {
				lastIssued = at
			}
		}
	}
	missingBefore, missingCausal := 0, 0
	for key, at := range w.acked {
		if present[key] {
			continue
		}
		if at.Before(began) {
			missingBefore++
			t.Errorf("%s was acknowledged before the backup began but is not in it", key)
		} else if at.Before(lastIssued) {
			missingCausal++
			t.Errorf("%s was acknowledged before a write the backup holds was issued, but is not in it", key)
		}
	}
	t.Logf("restored: accounts sum to %d; %d of %d issued writes present; missing: %d acknowledged before the backup, %d before a held write",
		sum, len(present), len(w.issued), missingBefore, missingCausal)
	if n, err := rcl.Get(ctx, "bulk:4999").Result(); err != nil || n != val {
		t.Fatalf("bulk:4999 after restore: %v", err)
	}
	if got, err := rcl.HGetAll(ctx, "hash:big").Result(); err != nil || !maps.Equal(got, fields) {
		t.Fatalf("hash:big after restore: %d fields, %v", len(got), err)
	}
	if got, err := rcl.HGetAll(ctx, "hash:old").Result(); err != nil || !maps.Equal(got, map[string]string{"fresh": "2"}) {
		t.Fatalf("hash:old after restore: %v, %v", got, err)
	}
	if got, err := rcl.HGet(ctx, "hash:small", "b").Result(); err != nil || got != "2" {
		t.Fatalf("hash:small after restore: %q, %v", got, err)
	}

	// A second restore into the now-filled cluster is refused.
	cmd := exec.Command(binary, "ctl", "--http", dnodes[0].HTTPAddr, "restore", "--from", dir)
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "not empty") {
		t.Fatalf("restore into a cluster with data: %v\n%s", err, b)
	}
}

// refuseDamaged checks that a backup with a byte flipped, a file missing,
// or a file cut short is refused with an error naming the file, and that
// the target stays empty and usable.
func refuseDamaged(t *testing.T, dir string, dst *launcher.Cluster) {
	t.Helper()
	m, err := backup.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The largest file, so the damage lands in data.
	victim := m.Partitions[0]
	for _, p := range m.Partitions {
		if p.Bytes > victim.Bytes {
			victim = p
		}
	}
	damages := map[string]func(path string){
		"flipped": func(path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x20
			must(t, os.WriteFile(path, b, 0o644))
		},
		"missing":   func(path string) { must(t, os.Remove(path)) },
		"cut short": func(path string) { must(t, os.Truncate(path, victim.Bytes-100)) },
	}
	addr := dst.Nodes()[0].HTTPAddr
	for what, damage := range damages {
		bad := filepath.Join(t.TempDir(), "bad")
		must(t, os.CopyFS(bad, os.DirFS(dir)))
		damage(filepath.Join(bad, victim.File))
		out, err := exec.Command(binary, "ctl", "--http", addr, "restore", "--from", bad).CombinedOutput()
		if err == nil || !strings.Contains(string(out), victim.File) || !strings.Contains(string(out), "nothing was restored") {
			t.Fatalf("restore of a backup with a file %s: %v\n%s", what, err, out)
		}
		t.Logf("file %s: refused: %s", what, strings.TrimSpace(lastLine(string(out))))
	}
	cl := client(dst.Nodes()[1].RESPAddr)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := cl.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("target after refused restores: DBSIZE %d, %v", n, err)
	}
	if err := cl.Set(ctx, "probe", "1", 0).Err(); err != nil {
		t.Fatalf("target unusable after refused restores: %v", err)
	}
	if err := cl.Del(ctx, "probe").Err(); err != nil {
		t.Fatal(err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, with a deadline
	}
}
