package ctl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/backup"
	"github.com/kintsu/kintsu/internal/ring"
)

type record struct {
	table byte
	k, v  string
}

// subKey is a TableSub key: the user key's length, the user key, the
// collection's version and the field.
func subKey(key string, ver uint64, field string) string {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(key)))
	b = append(b, key...)
	b = binary.BigEndian.AppendUint64(b, ver)
	return string(append(b, field...))
}

// owner is the partition of layout owning key's slot.
func owner(layout []span, key []byte) int {
	s := ring.Slot(key)
	for _, p := range layout {
		if p.Start <= s && s <= p.End {
			return p.ID
		}
	}
	panic("no owner")
}

// writeBackup writes a backup of layout holding recs, each in the file of
// the partition owning its key.
func writeBackup(t *testing.T, layout []span, recs []record) (string, map[int][]record) {
	t.Helper()
	dir := t.TempDir()
	byPart := map[int][]record{}
	for _, r := range recs {
		key := []byte(r.k)
		if r.table == backup.TableSub {
			key, _, _, _ = backup.SplitSub(key)
		}
		p := layout[0].ID // a transaction record: anywhere
		if r.table == backup.TableData || r.table == backup.TableSub {
			p = owner(layout, key)
		}
		byPart[p] = append(byPart[p], r)
	}
	m := &backup.Manifest{Format: backup.FormatVersion, ClusterID: "c", BackupID: "b1"}
	for _, sp := range layout {
		var buf bytes.Buffer
		w, err := backup.NewWriter(&buf, backup.Header{Partition: sp.ID, Index: 7})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range byPart[sp.ID] {
			if err := w.Add(r.table, []byte(r.k), []byte(r.v)); err != nil {
				t.Fatal(err)
			}
		}
		c, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		file := backup.FileName(sp.ID)
		if err := os.WriteFile(filepath.Join(dir, file), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(buf.Bytes())
		m.Partitions = append(m.Partitions, backup.Partition{ID: sp.ID, SlotStart: sp.Start, SlotEnd: sp.End, Index: 7,
			Keys: c.Keys, Records: c.Records, Bytes: int64(buf.Len()), File: file, SHA256: hex.EncodeToString(sum[:])})
		m.Keys += c.Keys
		m.Bytes += int64(buf.Len())
	}
	if err := backup.WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir, byPart
}

// fakeCluster answers the status and the restore steps as nodes do: a
// chunk numbered below the next expected is a retry and ignored, above it
// refused; a record of another partition's slot refused; the end's key
// count checked. failOnce makes the first try of chunk 1 of every
// partition fail after it was loaded, as a lost answer does.
type fakeCluster struct {
	t        *testing.T
	layout   []span
	srv      *httptest.Server
	failOnce bool
	refuse   int // a partition that refuses every chunk (-1: none)

	mu       sync.Mutex
	steps    []string // "P begin", "P load N", "P end K"
	next     map[int]int
	keys     map[int]int64
	loaded   map[int][]record
	chunks   map[int][][]byte
	failed   map[int]bool
	maxChunk int
}

func newFakeCluster(t *testing.T, layout []span) *fakeCluster {
	f := &fakeCluster{t: t, layout: layout, refuse: -1, next: map[int]int{}, keys: map[int]int64{},
		loaded: map[int][]record{}, chunks: map[int][][]byte{}, failed: map[int]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCluster) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

// settle waits for the requests still being served (a failed restore
// leaves some behind) before the test reads what they did.
func (f *fakeCluster) settle() { f.srv.Close() }

func (f *fakeCluster) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/v1/status" {
		st := api.StatusJSON{NodeID: 1}
		for i := len(f.layout) - 1; i >= 0; i-- { // in no particular order
			p := f.layout[i]
			st.Partitions = append(st.Partitions, api.PartitionStatus{ID: p.ID, SlotStart: p.Start, SlotEnd: p.End})
		}
		_ = json.NewEncoder(w).Encode(st)
		return
	}
	var p int
	var step string
	if _, err := fmt.Sscanf(r.URL.Path, "/v1/restore/b1/partitions/%d/%s", &p, &step); err != nil {
		http.NotFound(w, r)
		return
	}
	i := slices.IndexFunc(f.layout, func(s span) bool { return s.ID == p })
	if i < 0 {
		http.Error(w, "no such partition", http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch step {
	case "begin":
		f.steps = append(f.steps, fmt.Sprint(p, " begin"))
	case "end":
		want, _ := strconv.ParseInt(r.URL.Query().Get("keys"), 10, 64)
		f.steps = append(f.steps, fmt.Sprint(p, " end ", want))
		if want != f.keys[p] {
			http.Error(w, fmt.Sprintf("loaded %d keys, not %d", f.keys[p], want), http.StatusConflict)
		}
	case "load":
		seq, _ := strconv.Atoi(r.URL.Query().Get("seq"))
		f.steps = append(f.steps, fmt.Sprint(p, " load ", seq))
		f.maxChunk = max(f.maxChunk, len(body))
		switch {
		case p == f.refuse:
			http.Error(w, "refused", http.StatusConflict)
			return
		case seq < f.next[p]:
			return // a retry
		case seq > f.next[p]:
			http.Error(w, fmt.Sprintf("chunk %d out of order, want %d", seq, f.next[p]), http.StatusConflict)
			return
		}
		var recs []record
		var keys int64
		if err := backup.DecodeRecords(body, func(table byte, k, v []byte) error {
			key := k
			if table == backup.TableSub {
				key, _, _, _ = backup.SplitSub(k)
			}
			if s := ring.Slot(key); (table == backup.TableData || table == backup.TableSub) && (s < f.layout[i].Start || s > f.layout[i].End) {
				return fmt.Errorf("key %q does not belong to partition %d", key, p)
			}
			if table == backup.TableData {
				keys++
			}
			recs = append(recs, record{table, string(k), string(v)})
			return nil
		}); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.next[p]++
		f.keys[p] += keys
		f.loaded[p] = append(f.loaded[p], recs...)
		f.chunks[p] = append(f.chunks[p], body)
		if f.failOnce && seq == 1 && !f.failed[p] {
			f.failed[p] = true
			http.Error(w, "lost answer", http.StatusServiceUnavailable)
		}
	}
}

// records: strings, hashes (a data record and sub-keys each) and values
// large enough that several partitions need more than one chunk.
func sampleRecords(n int) []record {
	var recs []record
	big := strings.Repeat("x", 2000)
	for i := range n {
		recs = append(recs, record{backup.TableData, fmt.Sprint("k", i), "s" + big})
		if i%50 == 0 {
			h := fmt.Sprint("h", i)
			recs = append(recs, record{backup.TableData, h, "sthe collection's head"}) // its form does not matter here
			for f := range 5 {
				recs = append(recs, record{backup.TableSub, subKey(h, 3, fmt.Sprint("f", f)), fmt.Sprint("v", f)})
			}
		}
	}
	return recs
}

var (
	// A layout after splits and merges: ids with gaps, uneven ranges.
	threeMerged = []span{{0, 0, 4999}, {2, 5000, 5999}, {5, 6000, 16383}}
	fourSplit   = []span{{0, 0, 2047}, {1, 2048, 9999}, {3, 10000, 12287}, {4, 12288, 16383}}
)

// A backup restores into a cluster of another layout: every record lands
// once in the partition owning its key, each partition's chunks numbered
// from 0 (a lost answer retried under its number, loaded once) and within
// the chunk bound, every partition begun and ended with the data records
// it was sent.
func TestRestoreIntoAnotherLayout(t *testing.T) {
	recs := sampleRecords(6000)
	dir, _ := writeBackup(t, threeMerged, recs)
	f := newFakeCluster(t, fourSplit)
	f.failOnce = true
	m, err := Restore(context.Background(), f.addr(), dir, nil)
	f.settle()
	if err != nil {
		t.Fatal(err)
	}
	if m.Keys != 6000+6000/50 {
		t.Fatalf("manifest keys %d", m.Keys)
	}
	want := map[int][]record{}
	for _, r := range recs {
		key := []byte(r.k)
		if r.table == backup.TableSub {
			key, _, _, _ = backup.SplitSub(key)
		}
		p := owner(fourSplit, key)
		want[p] = append(want[p], r)
	}
	less := func(a, b record) int { return strings.Compare(string(a.table)+a.k, string(b.table)+b.k) }
	for _, p := range fourSplit {
		got := slices.Clone(f.loaded[p.ID])
		w := slices.Clone(want[p.ID])
		slices.SortFunc(got, less)
		slices.SortFunc(w, less)
		if !slices.Equal(got, w) {
			t.Errorf("partition %d loaded %d records, want %d", p.ID, len(got), len(w))
		}
		if f.next[p.ID] < 2 {
			t.Errorf("partition %d took %d chunks; the test wants several", p.ID, f.next[p.ID])
		}
		for _, c := range f.chunks[p.ID] {
			if len(c) > chunkBytes {
				t.Errorf("partition %d: a chunk of %d bytes", p.ID, len(c))
			}
		}
		for _, s := range []string{fmt.Sprint(p.ID, " begin"), fmt.Sprint(p.ID, " end ", f.keys[p.ID])} {
			if !slices.Contains(f.steps, s) {
				t.Errorf("no %q in %v", s, f.steps)
			}
		}
	}
	// Marks first, ends last.
	begins, ends := 0, 0
	for i, s := range f.steps {
		switch {
		case strings.HasSuffix(s, " begin"):
			begins++
			if i >= len(fourSplit) {
				t.Errorf("a begin after a load: %v", f.steps[:i+1])
			}
		case strings.Contains(s, " end "):
			ends++
			if i < len(f.steps)-len(fourSplit) {
				t.Errorf("an end before the last load: %q at %d of %d", s, i, len(f.steps))
			}
		}
	}
	if begins != len(fourSplit) || ends != len(fourSplit) {
		t.Errorf("%d begins, %d ends", begins, ends)
	}
}

// Into the backup's own layout each file goes to its partition as it is,
// in today's chunks.
func TestRestoreIntoTheSameLayout(t *testing.T) {
	recs := sampleRecords(3000)
	dir, byPart := writeBackup(t, threeMerged, recs)
	f := newFakeCluster(t, threeMerged)
	_, err := Restore(context.Background(), f.addr(), dir, nil)
	f.settle()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range threeMerged {
		if !slices.Equal(f.loaded[p.ID], byPart[p.ID]) {
			t.Errorf("partition %d loaded %d records, its file holds %d", p.ID, len(f.loaded[p.ID]), len(byPart[p.ID]))
		}
		for i, c := range f.chunks[p.ID] {
			if i < len(f.chunks[p.ID])-1 && len(c) < chunkBytes {
				t.Errorf("partition %d: chunk %d of %d bytes is not the last", p.ID, i, len(c))
			}
		}
	}
}

// A backup holding a transaction's record is refused by a cluster of
// another layout before any partition is marked, saying why and which
// layout would take it; the backup's own layout takes it.
func TestRestoreRefusesTransactionsIntoAnotherLayout(t *testing.T) {
	pending, _ := hex.DecodeString("500005000103") // a PENDING record, participant 3
	recs := append(sampleRecords(100), record{backup.TableRecords, string(make([]byte, 16)), string(pending)})
	dir, _ := writeBackup(t, threeMerged, recs)
	f := newFakeCluster(t, fourSplit)
	_, err := Restore(context.Background(), f.addr(), dir, nil)
	f.settle()
	if err == nil {
		t.Fatal("restored")
	}
	for _, want := range []string{"nothing was restored", "1 entries of transactions", "in its partitions 0)", "name partitions by id",
		"this cluster has 4 partitions: 0 (slots 0-2047)", "3 partitions: 0 (slots 0-4999), 2 (slots 5000-5999), 5 (slots 6000-16383)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, err)
		}
	}
	if len(f.steps) != 0 {
		t.Fatalf("steps before the refusal: %v", f.steps)
	}
	same := newFakeCluster(t, threeMerged)
	_, err = Restore(context.Background(), same.addr(), dir, nil)
	same.settle()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(same.loaded[0], recs[len(recs)-1]) {
		t.Fatal("the transaction record was not restored")
	}
}

// The hint names --partitions for a new cluster's layout.
func TestDescribeLayout(t *testing.T) {
	eq := backupLayout(equalPartitions(8))
	if got := describeLayout(eq, "x"); got != "8 partitions of equal ranges, as a cluster started with --partitions 8 has" {
		t.Errorf("equal: %q", got)
	}
	var many []span
	for i := range 40 {
		many = append(many, span{i * 2, uint16(i * 400), uint16(i*400 + 399)})
	}
	if got := describeLayout(many, "manifest.json"); !strings.Contains(got, "40 partitions: 0 (slots 0-399), 2 (slots 400-799)") || !strings.HasSuffix(got, "and 8 more (manifest.json lists them)") {
		t.Errorf("many: %q", got)
	}
}

// A status whose ranges do not own every slot once (a map caught in a
// split) is refused before anything is sent.
func TestRestoreRefusesAnIncompleteMap(t *testing.T) {
	dir, _ := writeBackup(t, threeMerged, sampleRecords(10))
	f := newFakeCluster(t, []span{{0, 0, 9999}, {1, 9000, 16383}})
	_, err := Restore(context.Background(), f.addr(), dir, nil)
	f.settle()
	if err == nil || !strings.Contains(err.Error(), "not whole") || len(f.steps) != 0 {
		t.Fatalf("an overlapping map: %v, steps %v", err, f.steps)
	}
}

// Many partitions each gathering a little are sent what they have (memory
// stays bounded); one partition refusing its chunks stops the restore
// with its error, and no partition is ended.
func TestRestoreIntoManyPartitions(t *testing.T) {
	recs := sampleRecords(9000) // over openBytes, under a chunk for any one partition
	dir, _ := writeBackup(t, threeMerged, recs)
	many := backupLayout(equalPartitions(256))
	f := newFakeCluster(t, many)
	_, err := Restore(context.Background(), f.addr(), dir, nil)
	f.settle()
	if err != nil {
		t.Fatal(err)
	}
	var loaded, split int
	for _, p := range many {
		loaded += len(f.loaded[p.ID])
		if f.next[p.ID] > 1 {
			split++
		}
	}
	if loaded != len(recs) || split == 0 {
		t.Fatalf("%d records loaded of %d; %d partitions in more than one chunk", loaded, len(recs), split)
	}

	f = newFakeCluster(t, many)
	f.refuse = 17
	_, err = Restore(context.Background(), f.addr(), dir, nil)
	f.settle()
	if err == nil || !strings.Contains(err.Error(), "did not finish") || !strings.Contains(err.Error(), "partition 17: refused") {
		t.Fatalf("a partition refusing: %v", err)
	}
	for _, s := range f.steps {
		if strings.Contains(s, " end ") {
			t.Fatalf("%q after a failure", s)
		}
	}
}
