package raftlog

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kintsu/kintsu/internal/dst/simfs"
)

// FuzzOpen feeds arbitrary bytes to recovery. The first byte picks how:
// bit 0 clear, the rest is a segment file as is, named by sequence number
// 1 + the byte's upper 6 bits (checksums rarely verify, so this fuzzes the
// framing and the torn-tail logic); bit 0 set, the rest
// is a sequence of payloads (u16 length, bytes) framed with valid headers,
// so that the payload decoder and the replay see arbitrary verified
// records; bit 1 puts the second half of those records in segment 2.
// Open must fail or succeed, never panic; a log that opened must serve
// every read, take a commit, and reopen.
func FuzzOpen(f *testing.F) {
	for i, seed := range fuzzSeeds(f) {
		f.Add(append([]byte{byte(i << 2)}, seed...))
	}
	f.Add([]byte{1, 3, 0, 'C', 0, 0})
	f.Add([]byte{1, 3, 0, 'C', 1, 5, 4, 0, 0, 0, 0, 0, 0, 1, 0, 'B', 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		fs := simfs.New(0)
		if err := fs.MkdirAll("raftlog", 0o755); err != nil {
			t.Fatal(err)
		}
		mode, rest := data[0], data[1:]
		if mode&1 == 0 {
			writeFile(t, fs, "raftlog/"+segName(uint32(mode>>2)+1), rest)
		} else {
			var recs [][]byte
			for len(rest) >= 2 {
				n := min(int(binary.LittleEndian.Uint16(rest)), len(rest)-2)
				recs = append(recs, rest[2:2+n])
				rest = rest[2+n:]
			}
			if mode&2 != 0 && len(recs) > 1 {
				writeFile(t, fs, seg1, frame(1, recs[:len(recs)/2]))
				writeFile(t, fs, "raftlog/00000002.log", frame(2, recs[len(recs)/2:]))
			} else {
				writeFile(t, fs, seg1, frame(1, recs))
			}
		}
		l, err := Open(fs, "raftlog", Options{Logger: quietLogger(), CacheEntries: 1})
		if err != nil {
			return
		}
		readAll(t, l)
		b := l.NewBatch()
		for _, g := range l.Groups() {
			last := mustLast(t, l, g)
			tm, err := l.Term(g, last)
			if err != nil {
				t.Fatalf("group %d Term(last %d): %v", g, last, err)
			}
			if last < math.MaxUint64 {
				b.Append(g, []*pbEntry{ent(last+1, tm, []byte("after"))})
			}
		}
		b.SetHardState(7, hsOf(1, 1, 0))
		if err := l.Commit(b, true); err != nil {
			t.Fatalf("Commit on a recovered log: %v", err)
		}
		want := l.Groups()
		l.Close()
		l, err = Open(fs, "raftlog", Options{Logger: quietLogger()})
		if err != nil {
			t.Fatalf("reopen after a commit: %v", err)
		}
		defer l.Close()
		if got := l.Groups(); len(got) != len(want) {
			t.Fatalf("groups %v after reopen, want %v", got, want)
		}
		readAll(t, l)
	})
}

// frame wraps payloads into records of segment seq, each claiming the
// bytes before it were synced.
func frame(seq uint32, payloads [][]byte) []byte {
	var out []byte
	for _, p := range payloads {
		h := make([]byte, headerSize)
		putHeader(h, seq, uint32(len(out)), p)
		out = append(append(out, h...), p...)
	}
	return out
}

func readAll(t *testing.T, l *Log) {
	t.Helper()
	for _, g := range l.Groups() {
		first, _ := l.FirstIndex(g)
		last := mustLast(t, l, g)
		if _, err := l.HardState(g); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Term(g, first-1); err != nil {
			t.Fatalf("group %d Term(first-1): %v", g, err)
		}
		if first > last || last == math.MaxUint64 {
			continue
		}
		es, err := l.Entries(g, first, last+1, math.MaxUint64)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("group %d Entries: %v", g, err)
		}
		if err == nil && uint64(len(es)) != last-first+1 {
			t.Fatalf("group %d: %d entries for [%d, %d]", g, len(es), first, last)
		}
	}
}

// fuzzSeeds are real segments: a small random log's files.
func fuzzSeeds(tb testing.TB) [][]byte {
	fs := simfs.New(0)
	l, err := Open(fs, "raftlog", Options{Logger: quietLogger(), SegmentSize: 2 << 10})
	if err != nil {
		tb.Fatal(err)
	}
	g := &gen{rng: rand.New(rand.NewPCG(1, 2)), term: 1, groups: 3}
	m := model{}
	for i := range 20 {
		b, next := g.batch(m)
		if err := l.Commit(b, i%3 == 0); err != nil {
			tb.Fatal(err)
		}
		m = next
	}
	var out [][]byte
	names, _ := fs.List("raftlog")
	for _, n := range names {
		if _, ok := parseSegName(n); ok {
			f, _ := fs.Open("raftlog/" + n)
			fi, _ := f.Stat()
			b := make([]byte, fi.Size())
			f.ReadAt(b, 0)
			f.Close()
			out = append(out, b)
		}
	}
	l.Close()
	return out
}
