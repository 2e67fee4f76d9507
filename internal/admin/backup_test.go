package admin

import (
	"context"
	"fmt"
	"github.com/kintsu/kintsu/internal/api"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kintsu/kintsu/internal/backup"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// A kept round: every partition is cut and released under one id, and
// the answer lists each partition's cut index and the admin addresses of
// its nodes, leader first, each once, leaving out nodes without one.
func TestCutRound(t *testing.T) {
	f := newFixture(t)
	f.write = func(group uint64, args [][]byte) string {
		if string(args[0]) == statemachine.OpCut {
			return fmt.Sprintf(":%d\r\n", 100+group)
		}
		return "+OK\r\n"
	}
	c, err := New(f.cfg).Cut(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(c.ID) || c.ClusterID != "c-test" || len(c.Partitions) != 3 {
		t.Fatalf("cut %+v", c)
	}
	wantNodes := [][]string{{"127.0.0.1:1", "127.0.0.1:2"}, {"127.0.0.1:2", "127.0.0.1:1"}, {"127.0.0.1:1", "127.0.0.1:2"}}
	for p, cp := range c.Partitions {
		if cp.ID != p || cp.Index != uint64(100+p) || !slices.Equal(cp.Nodes, wantNodes[p]) {
			t.Errorf("partition %d: %+v, want index %d on %v", p, cp, 100+p, wantNodes[p])
		}
	}
	cuts, uncuts := map[uint64]string{}, map[uint64]string{}
	for _, w := range f.calls() {
		switch w.args[0] {
		case statemachine.OpCut:
			cuts[w.group] = w.args[1]
			if w.args[2] != "5000" {
				t.Errorf("cut lease %s ms", w.args[2])
			}
		case statemachine.OpUncut:
			uncuts[w.group] = w.args[1]
		}
	}
	for p := range uint64(3) {
		if cuts[p] != c.ID || uncuts[p] != c.ID {
			t.Errorf("partition %d cut under %q, released under %q; the round is %s", p, cuts[p], uncuts[p], c.ID)
		}
	}
	if len(f.eng.dropped) != 0 {
		t.Errorf("a kept round dropped cuts %v", f.eng.dropped)
	}
}

// A round in which one partition does not apply its cut is released and
// dropped on every node, and retried under a new id; after the last
// attempt the request fails with the partition's answer.
func TestCutRoundsRetryWithNewIDs(t *testing.T) {
	f := newFixture(t)
	f.write = func(group uint64, args [][]byte) string {
		if string(args[0]) == statemachine.OpCut && group == 1 {
			return "-CLUSTERDOWN no leader for partition 1\r\n"
		}
		if string(args[0]) == statemachine.OpCut {
			return ":7\r\n"
		}
		return "+OK\r\n"
	}
	var mu sync.Mutex
	var onPeers []string // the cuts the other nodes were asked to drop
	f.cfg.DropCutOnPeers = func(_ context.Context, id string) {
		mu.Lock()
		onPeers = append(onPeers, id)
		mu.Unlock()
	}

	code, body := do(t, New(f.cfg).Handler(), http.MethodPost, "/v1/backup/cut", "")
	if code != http.StatusServiceUnavailable || body != "no consistent cut after 3 attempts: partition 1: CLUSTERDOWN no leader for partition 1\n" {
		t.Fatalf("POST /v1/backup/cut = %d %q", code, body)
	}
	var ids []string
	released := map[string]int{}
	for _, w := range f.calls() {
		switch {
		case w.args[0] == statemachine.OpCut && w.group == 0:
			ids = append(ids, w.args[1])
		case w.args[0] == statemachine.OpUncut:
			released[w.args[1]]++
		}
	}
	if len(ids) != 3 || ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Fatalf("round ids %v, want three different", ids)
	}
	for _, id := range ids {
		if released[id] != 3 {
			t.Errorf("round %s released on %d partitions, want 3", id, released[id])
		}
	}
	if !slices.Equal(f.eng.dropped, ids) || !slices.Equal(onPeers, ids) {
		t.Errorf("dropped here %v and on the peers %v; want every round %v", f.eng.dropped, onPeers, ids)
	}
}

func TestBackupStreamAndDropRoutes(t *testing.T) {
	f := newFixture(t)
	h := New(f.cfg).Handler()
	for _, c := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/v1/backup/c1/partitions/1", 404, "node 1 holds no cut c1 of partition 1\n"},
		{"GET", "/v1/backup/c1/partitions/3", 404, "no partition \"3\" (the cluster has 3)\n"},
		{"GET", "/v1/backup/c1/partitions/-1", 404, "no partition \"-1\" (the cluster has 3)\n"},
		{"DELETE", "/v1/backup/c1", 204, ""},
	} {
		if code, body := do(t, h, c.method, c.path, ""); code != c.code || body != c.body {
			t.Errorf("%s %s = %d %q, want %d %q", c.method, c.path, code, body, c.code, c.body)
		}
	}
	if !slices.Equal(f.eng.dropped, []string{"c1"}) {
		t.Errorf("dropped %v", f.eng.dropped)
	}
}

// Each restore step proposes its entry to the partition; a chunk is
// checked first, and one the node refuses never reaches the log.
func TestRestoreSteps(t *testing.T) {
	f := newFixture(t)
	refuse := ""
	f.write = func(uint64, [][]byte) string {
		if refuse != "" {
			return refuse
		}
		return "+OK\r\n"
	}
	h := New(f.cfg).Handler()
	good := string(backup.AppendRecord(nil, backup.TableData, []byte("b1"), []byte("sone")))
	for _, c := range []struct {
		what, path, body string
		refuse           string
		code             int
		answer           string
		proposed         []string // the entry proposed to partition 1; nil: none
	}{
		{"begin", "/v1/restore/r1/partitions/1/begin", "", "", 204, "", []string{statemachine.OpRestoreBegin, "r1"}},
		{"a refused begin", "/v1/restore/r1/partitions/1/begin", "", "-ERR restore: partition 1 is not empty\r\n", 409, "partition 1: ERR restore: partition 1 is not empty\n", []string{statemachine.OpRestoreBegin, "r1"}},
		{"a chunk", "/v1/restore/r1/partitions/1/load?seq=4", good, "", 204, "", []string{statemachine.OpRestoreLoad, "r1", "4", good}},
		{"a key of another partition", "/v1/restore/r1/partitions/1/load?seq=5", string(backup.AppendRecord(nil, backup.TableData, []byte("c1"), []byte("s"))), "", 400, "does not belong to partition 1", nil},
		{"an unreadable value", "/v1/restore/r1/partitions/1/load?seq=5", string(backup.AppendRecord(nil, backup.TableData, []byte("b2"), []byte("?"))), "", 400, "restore chunk: ", nil},
		{"a truncated chunk", "/v1/restore/r1/partitions/1/load?seq=5", good[:len(good)-1], "", 400, "restore chunk: ", nil},
		{"end", "/v1/restore/r1/partitions/1/end?keys=3", "", "", 204, "", []string{statemachine.OpRestoreEnd, "r1", "3"}},
		{"an unknown step", "/v1/restore/r1/partitions/1/rewind", "", "", 404, "404 page not found\n", nil},
		{"no such partition", "/v1/restore/r1/partitions/9/begin", "", "", 404, "no partition \"9\" (the cluster has 3)\n", nil},
	} {
		before := len(f.calls())
		refuse = c.refuse
		code, answer := do(t, h, http.MethodPost, c.path, c.body)
		if code != c.code || !strings.Contains(answer, c.answer) || (c.answer == "" && answer != "") {
			t.Errorf("%s: %d %q, want %d %q", c.what, code, answer, c.code, c.answer)
		}
		calls := f.calls()[before:]
		switch {
		case c.proposed == nil && len(calls) != 0:
			t.Errorf("%s proposed %v", c.what, calls)
		case c.proposed != nil && (len(calls) != 1 || calls[0].group != 1 || !slices.Equal(calls[0].args, c.proposed)):
			t.Errorf("%s proposed %v, want %q to partition 1", c.what, calls, c.proposed)
		}
	}
}

// A chunk over MaxRestoreChunk is refused before it is read whole.
func TestRestoreChunkBound(t *testing.T) {
	f := newFixture(t)
	h := New(f.cfg).Handler()
	req := httptest.NewRequest(http.MethodPost, "/v1/restore/r1/partitions/1/load?seq=0", io.LimitReader(zeros{}, MaxRestoreChunk+1))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge || len(f.calls()) != 0 {
		t.Fatalf("an oversized chunk: %d %q, %d proposals", rec.Code, rec.Body, len(f.calls()))
	}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// A partition a split gave a range answers its cut with that range,
// which must be its record's: a map from before a split would leave the
// moved keys out of the backup.
func TestCutIndexChecksTheRange(t *testing.T) {
	rec := api.PartitionRecord{ID: 3, SlotStart: 0, SlotEnd: 4095}
	if i, err := cutIndex(rec, []byte(":42\r\n")); err != nil || i != 42 {
		t.Fatalf("a partition never split: %d %v", i, err)
	}
	if i, err := cutIndex(rec, []byte("*3\r\n:43\r\n:0\r\n:4095\r\n")); err != nil || i != 43 {
		t.Fatalf("a split partition matching its record: %d %v", i, err)
	}
	if _, err := cutIndex(rec, []byte("*3\r\n:44\r\n:0\r\n:2047\r\n")); err == nil || !strings.Contains(err.Error(), "a split ran") {
		t.Fatalf("a split partition whose record is stale: %v", err)
	}
	if _, err := cutIndex(rec, []byte("-ERR no\r\n")); err == nil {
		t.Fatal("an error reply was taken")
	}
}
