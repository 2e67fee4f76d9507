package kv

import (
	"bytes"
	"testing"
)

// oneKey is a Writer holding a single key without allocating per call, so
// the benchmark measures kv rather than the test store.
type oneKey struct {
	key, val []byte
	ok       bool
}

func (w *oneKey) Get(key []byte) ([]byte, bool, error) {
	if w.ok && bytes.Equal(key, w.key) {
		return w.val, true, nil
	}
	return nil, false, nil
}

func (w *oneKey) Put(key, stored []byte, created bool) error {
	w.key = append(w.key[:0], key...)
	w.val = append(w.val[:0], stored...)
	w.ok = true
	return nil
}

func (w *oneKey) Del(key []byte) error { w.ok = false; return nil }

func (w *oneKey) PutBlind(key, stored []byte) error { return w.Put(key, stored, !w.ok) }

func (w *oneKey) NowMS() int64 { return 0 }

func (w *oneKey) GetSub([]byte, uint64, []byte) ([]byte, bool, error) { return nil, false, nil }
func (w *oneKey) ScanSub([]byte, uint64, []byte, bool, func(sub, v []byte) bool) error {
	return nil
}
func (w *oneKey) PutSub([]byte, uint64, []byte, []byte) error { return nil }
func (w *oneKey) DelSub([]byte, uint64, []byte) error         { return nil }
func (w *oneKey) NewVersion([]byte) (uint64, error)           { return 1, nil }

func BenchmarkApplySet(b *testing.B) {
	args := bargs("SET", "user:1000:profile", string(bytes.Repeat([]byte("v"), 100)))
	w := &oneKey{}
	out := make([]byte, 0, 64)
	b.ReportAllocs()
	b.SetBytes(100)
	for b.Loop() {
		var err error
		out, err = Apply(w, args, out[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
	if string(out) != rOK {
		b.Fatalf("reply %q", out)
	}
}

func BenchmarkApplyIncr(b *testing.B) {
	args := bargs("INCR", "counter")
	w := &oneKey{}
	out := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		out, _ = Apply(w, args, out[:0])
	}
}
