package kv

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: derive from the clock)")

// testRand returns a seeded generator and logs the seed, so a failing run can
// be replayed with -seed.
func testRand(t testing.TB) (*rand.Rand, uint64) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed
}

// memStore is a map-backed Writer that also polices the Writer contract:
//   - a slice returned by Get is scribbled over at the next call, so an
//     evaluation that keeps it too long produces visibly wrong output;
//   - Put's created flag must say whether the key was absent;
//   - Del is only called for keys that exist;
//   - every stored value carries a type tag and respects MaxValueBytes.
//
// created and deleted count what kv reported, so created-deleted must equal
// the number of keys.
type memStore struct {
	m map[string][]byte
	MemSubs
	created, deleted int
	blind            int // PutBlind calls
	violations       []string
	lent             []byte

	// failOn makes the named method ("get", "put", "del") fail with errStore.
	failOn string
	// now is what NowMS answers (Unix ms).
	now int64
}

// testNow is the stores' and the model's starting time.
const testNow int64 = 1_700_000_000_000

func (s *memStore) NowMS() int64 { return s.now }

// NewVersion: the store has no log index; versions start at 1.
func (s *memStore) NewVersion(k []byte) (uint64, error) { return s.VersionAt(k, 1), nil }

var errStore = errors.New("injected storage failure")

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}, now: testNow} }

// storeWith returns a store holding raw stored values (type tag included).
func storeWith(raw map[string]string) *memStore {
	s := newMemStore()
	for k, v := range raw {
		s.m[k] = []byte(v)
	}
	s.created = len(raw)
	return s
}

func (s *memStore) poison() {
	for i := range s.lent {
		s.lent[i] = '#'
	}
	s.lent = nil
}

func (s *memStore) violate(format string, args ...any) {
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

func (s *memStore) Get(key []byte) ([]byte, bool, error) {
	s.poison()
	if s.failOn == "get" {
		return nil, false, errStore
	}
	v, ok := s.m[string(key)]
	if !ok {
		return nil, false, nil
	}
	s.lent = bytes.Clone(v)
	return s.lent, true, nil
}

func (s *memStore) Put(key, stored []byte, created bool) error {
	s.poison()
	if s.failOn == "put" {
		return errStore
	}
	_, exists := s.m[string(key)]
	if created == exists {
		s.violate("Put(%q) created=%v but key exists=%v", key, created, exists)
	}
	if len(stored) == 0 {
		s.violate("Put(%q) of a value without a type tag", key)
	} else if len(stored)-1 > MaxValueBytes {
		s.violate("Put(%q) of %d bytes, over MaxValueBytes", key, len(stored)-1)
	}
	s.m[string(key)] = bytes.Clone(stored)
	if created {
		s.created++
	}
	return nil
}

func (s *memStore) Del(key []byte) error {
	return s.del(key)
}

// PutBlind is Put for a writer that did not read the key: the twin knows.
func (s *memStore) PutBlind(key, stored []byte) error {
	_, exists := s.m[string(key)]
	s.blind++
	return s.Put(key, stored, !exists)
}

func (s *memStore) del(key []byte) error {
	s.poison()
	if s.failOn == "del" {
		return errStore
	}
	if _, ok := s.m[string(key)]; !ok {
		s.violate("Del(%q) of a missing key", key)
	}
	delete(s.m, string(key))
	s.deleted++
	return nil
}

// check reports contract violations and broken key accounting.
func (s *memStore) check(t testing.TB) {
	t.Helper()
	for _, v := range s.violations {
		t.Errorf("writer contract: %s", v)
	}
	s.violations = nil
	if got := s.created - s.deleted; got != len(s.m) {
		t.Errorf("accounting: created %d - deleted %d = %d, but the store holds %d keys", s.created, s.deleted, got, len(s.m))
	}
}

// raw returns the stored values as strings, for comparisons.
func (s *memStore) raw() map[string]string {
	out := make(map[string]string, len(s.m))
	for k, v := range s.m {
		out[k] = string(v)
	}
	return out
}

// live is raw without the keys that have expired by now (still stored
// until a write touches them, but absent to every command).
func (s *memStore) live() map[string]string {
	out := s.raw()
	for k, v := range out {
		if at := expiryOf([]byte(v)); at != 0 && at <= s.now {
			delete(out, k)
		}
	}
	return out
}

// sv is the stored form of string value v; foreign is a value of another
// type (a hash's metadata record).
func sv(v string) string { return string(typeString) + v }

// svAt is the stored form of v expiring at (Unix ms).
func svAt(v string, at int64) string { return string(encodeString([]byte(v), at)) }

var foreign = string(meta{tag: typeHash, ver: 1, n: 1}.encode())

func bargs(args ...string) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = []byte(a)
	}
	return out
}

// apply runs one command through Apply and fails the test on a storage error.
func apply(t testing.TB, w Writer, args ...string) string {
	t.Helper()
	out, err := Apply(w, bargs(args...), nil)
	if err != nil {
		t.Fatalf("%q: unexpected storage error %v", args, err)
	}
	return string(out)
}

func showArgs(args [][]byte) string {
	parts := make([]string, len(args))
	for i, a := range args {
		if len(a) > 40 {
			parts[i] = fmt.Sprintf("%q...(%d bytes)", a[:40], len(a))
		} else {
			parts[i] = strconv.Quote(string(a))
		}
	}
	return strings.Join(parts, " ")
}

func diffState(got, want map[string]string) string {
	if maps.Equal(got, want) {
		return ""
	}
	keys := slices.Sorted(maps.Keys(got))
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	var b strings.Builder
	for _, k := range keys {
		g, gok := got[k]
		w, wok := want[k]
		if g != w || gok != wok {
			fmt.Fprintf(&b, "  key %q: got %q (present %v), want %q (present %v)\n", k, clipStr(g), gok, clipStr(w), wok)
		}
	}
	return b.String()
}

func clipStr(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// parseReply consumes exactly one RESP2 reply from b and returns the rest.
func parseReply(b []byte) (rest []byte, err error) {
	line := func(b []byte) (string, []byte, error) {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			return "", nil, errors.New("unterminated line")
		}
		if bytes.ContainsAny(b[:i], "\r\n") {
			return "", nil, errors.New("CR or LF inside a line")
		}
		return string(b[:i]), b[i+2:], nil
	}
	if len(b) == 0 {
		return nil, errors.New("empty reply")
	}
	kind := b[0]
	text, rest, err := line(b[1:])
	if err != nil {
		return nil, err
	}
	switch kind {
	case '+', '-':
		return rest, nil
	case ':':
		if _, err := strconv.ParseInt(text, 10, 64); err != nil {
			return nil, fmt.Errorf("bad integer %q", text)
		}
		return rest, nil
	case '$':
		n, err := strconv.Atoi(text)
		if err != nil || n < -1 {
			return nil, fmt.Errorf("bad bulk length %q", text)
		}
		if n == -1 {
			return rest, nil
		}
		if len(rest) < n+2 || string(rest[n:n+2]) != "\r\n" {
			return nil, errors.New("bad bulk body")
		}
		return rest[n+2:], nil
	case '*':
		n, err := strconv.Atoi(text)
		if err != nil || n < -1 {
			return nil, fmt.Errorf("bad array length %q", text)
		}
		for range max(n, 0) {
			if rest, err = parseReply(rest); err != nil {
				return nil, err
			}
		}
		return rest, nil
	}
	return nil, fmt.Errorf("unknown reply type %q", kind)
}

func TestMemStorePoisonsLentSlices(t *testing.T) {
	s := storeWith(map[string]string{"k": sv("v")})
	v, _, _ := s.Get([]byte("k"))
	s.Get([]byte("other"))
	if string(v) == sv("v") {
		t.Fatal("a slice lent by Get survived the next call; the aliasing checks would be blind")
	}
}

func TestParseReply(t *testing.T) {
	for _, ok := range []string{"+OK\r\n", "-ERR x\r\n", ":-5\r\n", "$-1\r\n", "$0\r\n\r\n", "$2\r\na\n\r\n", "*2\r\n$1\r\na\r\n$-1\r\n", "*0\r\n"} {
		if rest, err := parseReply([]byte(ok)); err != nil || len(rest) != 0 {
			t.Errorf("parseReply(%q) = %q, %v", ok, rest, err)
		}
	}
	for _, bad := range []string{"", "+OK", "-a\rb\r\n", ":x\r\n", "$3\r\nab\r\n", "*2\r\n:1\r\n", "?\r\n"} {
		if _, err := parseReply([]byte(bad)); err == nil {
			t.Errorf("parseReply(%q) accepted a malformed reply", bad)
		}
	}
}
