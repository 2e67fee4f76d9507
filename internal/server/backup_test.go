package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/backup"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/storage"
)

// postBody posts body and returns the status and the answer's text.
func postBody(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// keyIn returns a key of partition p.
func keyIn(n *Node, p uint64, tag string) string {
	for i := 0; ; i++ {
		if k := fmt.Sprint(tag, i); n.partitionOf([]byte(k)) == p {
			return k
		}
	}
}

// The restore steps of one partition: refused unless empty, client writes
// refused while it loads, chunks loaded once each and in order, damaged
// chunks refused before anything changes (by the node and by the state
// machine), the key count checked at the end.
func TestRestoreSteps(t *testing.T) {
	tc := startCluster(t, 3, nil)
	n := tc.nodes[0]
	ctx := ctx5(t)
	cl := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), MaxRetries: -1})
	defer cl.Close()
	base := "http://" + tc.cfgs[0].HTTPAddr + "/v1/restore/b1/partitions/"
	const full, empty = 1, 2
	if err := cl.Set(ctx, keyIn(n, full, "x"), "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if code, body := postBody(t, fmt.Sprint(base, full, "/begin"), nil); code != http.StatusConflict || !strings.Contains(body, "not empty") {
		t.Fatalf("begin on a partition with data: %d %s", code, body)
	}

	if code, body := postBody(t, fmt.Sprint(base, empty, "/begin"), nil); code != http.StatusNoContent {
		t.Fatalf("begin: %d %s", code, body)
	}
	k1, k2 := keyIn(n, empty, "a"), keyIn(n, empty, "b")
	if err := cl.Set(ctx, k2, "client", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "LOADING") {
		t.Fatalf("a client write during the restore: %v", err)
	}
	// A transaction that writes there is refused too: one partition (one
	// entry), or across partitions (its PREPARE there), nothing applied.
	other := keyIn(n, full, "t")
	if _, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, k2, "t", 0)
		return nil
	}); err == nil || !strings.HasPrefix(err.Error(), "LOADING") {
		t.Fatalf("a one-partition transaction during the restore: %v", err)
	}
	if err := cl.MSet(ctx, other, "t", k2, "t").Err(); err == nil || !strings.Contains(err.Error(), "LOADING") || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
		t.Fatalf("a cross-partition transaction during the restore: %v", err)
	}
	if v, err := cl.Get(ctx, other).Result(); err != redis.Nil {
		t.Fatalf("the refused transaction applied its other share: %q %v", v, err)
	}
	chunk0 := backup.AppendRecord(nil, backup.TableData, []byte(k1), []byte("sone"))
	chunk1 := backup.AppendRecord(nil, backup.TableData, []byte(k2), []byte("stwo"))
	for _, step := range []struct {
		what  string
		url   string
		chunk []byte
		code  int
		want  string
	}{
		{"chunk 0", "/load?seq=0", chunk0, http.StatusNoContent, ""},
		{"chunk 0 again", "/load?seq=0", chunk0, http.StatusNoContent, ""},
		{"chunk 2 before 1", "/load?seq=2", chunk1, http.StatusConflict, "out of order"},
		{"a malformed lock", "/load?seq=1", backup.AppendRecord(nil, backup.TableLocks, []byte(k2), []byte("junk")), http.StatusBadRequest, "transaction table"},
		{"an unreadable value", "/load?seq=1", backup.AppendRecord(nil, backup.TableData, []byte(k2), []byte("?")), http.StatusBadRequest, "cannot read"},
		{"a key of another partition", "/load?seq=1", backup.AppendRecord(nil, backup.TableData, []byte(keyIn(n, full, "c")), []byte("s")), http.StatusBadRequest, "does not belong"},
		{"the end too early", "/end?keys=2", nil, http.StatusConflict, "loaded 1 keys"},
		{"chunk 1", "/load?seq=1", chunk1, http.StatusNoContent, ""},
	} {
		if code, body := postBody(t, fmt.Sprint(base, empty, step.url), step.chunk); code != step.code || !strings.Contains(body, step.want) {
			t.Fatalf("%s: %d %q; want %d %q", step.what, code, body, step.code, step.want)
		}
	}
	// The state machine refuses a malformed entry on its own, without
	// stopping (the node's check above is the first line, not the only).
	bad := backup.AppendRecord(nil, storage.TxnParts, make([]byte, 16), []byte{1, 2, 3})
	reply := n.write(ctx, empty, [][]byte{[]byte(statemachine.OpRestoreLoad), []byte("b1"), []byte("2"), bad})
	if !bytes.Contains(reply, []byte("transaction table")) {
		t.Fatalf("state machine on a malformed part: %q", reply)
	}
	if code, body := postBody(t, fmt.Sprint(base, empty, "/end?keys=2"), nil); code != http.StatusNoContent {
		t.Fatalf("end: %d %s", code, body)
	}
	for k, want := range map[string]string{k1: "one", k2: "two"} {
		if got, err := cl.Get(ctx, k).Result(); err != nil || got != want {
			t.Fatalf("%s after restore = %q, %v", k, got, err)
		}
	}
	if err := cl.Set(ctx, k2, "client", 0).Err(); err != nil {
		t.Fatalf("a client write after the restore: %v", err)
	}
	if code, _ := postBody(t, fmt.Sprint(base, empty, "/load?seq=2"), chunk1); code != http.StatusConflict {
		t.Fatalf("a load after the end: %d", code)
	}
}

// A backup cut round: every partition is cut, and the snapshot each node
// streams holds exactly the data written before.
func TestBackupCutStreams(t *testing.T) {
	tc := startCluster(t, 3, nil)
	n := tc.nodes[0]
	ctx := ctx5(t)
	cl := redis.NewClient(&redis.Options{Addr: tc.respAddr(1), MaxRetries: -1})
	defer cl.Close()
	for i := range 50 {
		if err := cl.Set(ctx, fmt.Sprint("k", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	cut, err := n.admin.Cut(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Set(ctx, "after", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, p := range cut.Partitions {
		resp, err := http.Get(fmt.Sprintf("http://%s/v1/backup/%s/partitions/%d", p.Nodes[0], cut.ID, p.ID))
		if err != nil {
			t.Fatal(err)
		}
		_, hdr, err := backup.Scan(resp.Body, func(table byte, k, _ []byte) error {
			if table == backup.TableData {
				keys[string(k)] = true
			}
			return nil
		})
		resp.Body.Close()
		if err != nil || hdr.Index != p.Index || hdr.Partition != p.ID {
			t.Fatalf("partition %d: %+v %v", p.ID, hdr, err)
		}
	}
	if len(keys) != 50 || keys["after"] {
		t.Fatalf("the cut holds %d keys (after: %v), want the 50 written before", len(keys), keys["after"])
	}
}
