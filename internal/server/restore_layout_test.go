package server

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/backup"
	"github.com/kintsu/kintsu/internal/ctl"
)

// A backup of a cluster whose merge left a gap in the partition ids (3
// partitions) restores into a new cluster of 8: every string and every
// hash's fields read back, each key where the new layout puts it, and a
// hash replaced before the backup shows only its new fields.
func TestRestoreIntoAnotherLayout(t *testing.T) {
	src := startCluster(t, 3, func(c *Config) { c.Partitions = 4 })
	admin := src.cfgs[0].HTTPAddr
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	merged := mergeOver(t, admin, 1)
	for i := range src.nodes {
		waitFor(t, fmt.Sprintf("node %d to map 3 partitions", i+1), 20*time.Second, func() bool {
			st, err := ctl.Fetch(ctx, src.cfgs[i].HTTPAddr)
			return err == nil && len(st.Partitions) == 3
		})
	}

	cl := redis.NewClient(&redis.Options{Addr: src.respAddr(0)})
	defer cl.Close()
	strs := map[string]string{}
	hashes := map[string]map[string]string{}
	pipe := cl.Pipeline()
	for i := range 400 {
		k, v := fmt.Sprint("s:", i), fmt.Sprint("v", i)
		if i%10 == 0 {
			k = fmt.Sprintf("{tag%d}:s", i) // a hash tag routes by the tag alone
		}
		strs[k] = v
		pipe.Set(ctx, k, v, 0)
	}
	for i := range 20 {
		h := fmt.Sprint("h:", i)
		hashes[h] = map[string]string{}
		for f := range 30 {
			hashes[h][fmt.Sprint("f", f)] = fmt.Sprint(i, "-", f)
		}
		pipe.HSet(ctx, h, hashes[h])
	}
	pipe.HSet(ctx, "h:old", "stale", "1")
	pipe.Del(ctx, "h:old")
	pipe.HSet(ctx, "h:old", "fresh", "2")
	hashes["h:old"] = map[string]string{"fresh": "2"}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "backup")
	m, err := ctl.Backup(ctx, admin, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.ReadManifest(dir); err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, p := range m.Partitions {
		ids = append(ids, p.ID)
	}
	if len(ids) != 3 || ids[len(ids)-1] != 3 {
		t.Fatalf("the backup's partitions %v; the merge (%+v) should have left a gap", ids, merged)
	}

	dst := startCluster(t, 1, func(c *Config) { c.Partitions, c.Replicas = 8, 1 })
	if _, err := ctl.Restore(ctx, dst.cfgs[0].HTTPAddr, dir, nil); err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: dst.respAddr(0)})
	defer rc.Close()
	if n, err := rc.DBSize(ctx).Result(); err != nil || n != int64(len(strs)+len(hashes)) {
		t.Fatalf("DBSIZE after the restore: %d %v, want %d", n, err, len(strs)+len(hashes))
	}
	for k, want := range strs {
		if got, err := rc.Get(ctx, k).Result(); err != nil || got != want {
			t.Fatalf("%s after the restore: %q %v, want %q", k, got, err, want)
		}
	}
	for h, want := range hashes {
		if got, err := rc.HGetAll(ctx, h).Result(); err != nil || !maps.Equal(got, want) {
			t.Fatalf("%s after the restore: %v %v, want %v", h, got, err, want)
		}
	}
	// The restored cluster takes writes again.
	if err := rc.HSet(ctx, "h:0", "new", "1").Err(); err != nil {
		t.Fatal(err)
	}
}

// mergeOver merges partition id with its neighbour through the admin API,
// asking again while the merge is pending.
func mergeOver(t *testing.T, admin string, id int) api.MergeJSON {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post(fmt.Sprintf("http://%s/v1/partitions/%d/merge", admin, id), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		var res api.MergeJSON
		derr := json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK && derr == nil:
			return res
		case resp.StatusCode != http.StatusAccepted || time.Now().After(deadline):
			t.Fatalf("merge of partition %d: %s %+v %v", id, resp.Status, res, derr)
		}
		time.Sleep(100 * time.Millisecond) // the placement driver co-locates the replicas
	}
}
