package txn

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
)

// speculate runs cmds against g through a Speculation and returns its
// effects.
func speculate(t *testing.T, g *memGroup, cmds ...string) (*Speculation, []byte) {
	t.Helper()
	s := Speculate(g)
	for _, c := range cmds {
		args := cmd(c)
		if _, err := kv.Exec(s, command.Lookup(args[0]), args, nil); err != nil {
			t.Fatal(err)
		}
	}
	eff, err := s.Effects(nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, eff
}

func get(t *testing.T, g *memGroup, c string) string {
	t.Helper()
	return string(g.read(cmd(c)))
}

func TestEffectsApplyWhatTheSpeculationDid(t *testing.T) {
	g := newMemGroup()
	g.apply(cmd("SET a 1"))
	g.apply(cmd("RPUSH l x y"))
	var fields []string
	for i := range 300 { // past the eager drop: a collection big enough to orphan
		fields = append(fields, fmt.Sprintf("f%d v%d", i, i))
	}
	_, eff := speculate(t, g, "INCR a", "HSET h "+strings.Join(fields, " "), "LPOP l", "SET b 2", "DEL b")
	if eff == nil {
		t.Fatal("no effects from writes")
	}
	if got := get(t, g, "GET a"); got != "$1\r\n1\r\n" {
		t.Fatalf("the speculation changed the store: GET a = %q", got)
	}
	if out := g.apply(EffectsArgs(eff)); string(out) != "+OK\r\n" {
		t.Fatalf("EFFECTS = %q", out)
	}
	for c, want := range map[string]string{
		"GET a":        "$1\r\n2\r\n",
		"HLEN h":       ":300\r\n",
		"HGET h f299":  "$4\r\nv299\r\n",
		"LRANGE l 0 9": "*1\r\n$1\r\ny\r\n",
		"EXISTS b":     ":0\r\n",
	} {
		if got := get(t, g, c); got != want {
			t.Errorf("%s = %q, want %q", c, got, want)
		}
	}
	stored, _, _ := g.Get([]byte("h"))
	if ver, ok := kv.CollectionVersion(stored); !ok || ver >= specVersion {
		t.Errorf("the new hash kept its speculative version %d", ver)
	}
}

func TestEffectsRefusedWhenATouchedKeyChanged(t *testing.T) {
	for name, between := range map[string]string{
		"a key read":              "SET r 9",
		"a key written":           "SET w 9",
		"an absent key created":   "SET nope 1",
		"a key read expires":      "PEXPIRE r 1",
		"a collection read grows": "SADD s y",
	} {
		t.Run(name, func(t *testing.T) {
			g := newMemGroup()
			g.apply(cmd("SET r 1"))
			g.apply(cmd("SET w 1"))
			g.apply(cmd("SADD s x"))
			_, eff := speculate(t, g, "GET r", "GET nope", "SCARD s", "SET w 2")
			g.apply(cmd(between))
			g.nowMS = simNow + 10
			if out := g.apply(EffectsArgs(eff)); !failure.WatchFailed.Is(out) {
				t.Fatalf("EFFECTS after %q = %q, want a failed watch", between, out)
			}
			if got := get(t, g, "GET w"); got == "$1\r\n2\r\n" {
				t.Fatal("refused effects were applied")
			}
		})
	}
}

func TestEffectsWaitForLocks(t *testing.T) {
	g := newMemGroup()
	g.apply(cmd("SET a 1"))
	s, eff := speculate(t, g, "INCR a")
	holder := Ref{ID: ID{1}, Group: 0, Priority: 5}
	if err := g.TxnPut(TableLocks, []byte("a"), (&Lock{Writer: &holder}).encode()); err != nil {
		t.Fatal(err)
	}
	if hs, err := s.Blockers(); err != nil || len(hs) != 1 || hs[0] != holder {
		t.Fatalf("Blockers = %v, %v; want the lock's holder", hs, err)
	}
	out := g.apply(EffectsArgs(eff))
	if hs, ok := ParseLocked(out); !ok || len(hs) != 1 || !g.refused {
		t.Fatalf("EFFECTS under a lock = %q (refused %v), want the holder, refused", out, g.refused)
	}
}

// A collection the script created is given its version when the entry
// applies: sub-keys another entry orphaned meanwhile under the version
// the view would have given never join it.
func TestEffectsNewCollectionDoesNotMeetOrphans(t *testing.T) {
	g := newMemGroup()
	var big []string
	for i := range 400 {
		big = append(big, fmt.Sprintf("old%d", i))
	}
	_, eff := speculate(t, g, "SADD s new")
	g.apply(cmd("SADD other " + strings.Join(big, " ")))
	g.apply(cmd("SADD s " + strings.Join(big, " "))) // s is created ...
	g.apply(cmd("DEL s"))                            // ... and orphans 400 members
	if out := g.apply(EffectsArgs(eff)); string(out) != "+OK\r\n" {
		t.Fatalf("EFFECTS = %q", out)
	}
	if got := get(t, g, "SMEMBERS s"); got != "*1\r\n$3\r\nnew\r\n" {
		t.Fatalf("SMEMBERS s = %.80q, want only the script's member", got)
	}
}

func TestEffectsMalformedAreRefused(t *testing.T) {
	g := newMemGroup()
	unwatched := encodeBody(nil, nil, nil).Bytes((&part{keys: []partKey{{key: []byte("k"), write: true, intent: intentPut, value: []byte("Sx")}}}).encode())
	badValue := encodeBody(nil, []Watch{{Key: []byte("k")}}, nil).Bytes((&part{keys: []partKey{{key: []byte("k"), write: true, intent: intentPut, value: []byte{0xff}}}}).encode())
	for name, body := range map[string][]byte{
		"garbage":            []byte("\xff\xff\xff"),
		"empty":              nil,
		"an unwatched write": unwatched,
		"a malformed value":  badValue,
		"trailing bytes":     append(unwatched, 0),
	} {
		out := g.apply(EffectsArgs(body))
		if !failure.BadOp.Is(out) {
			t.Errorf("%s: EFFECTS = %q, want BadOp", name, out)
		}
		if _, ok, _ := g.Get([]byte("k")); ok {
			t.Fatalf("%s: a malformed EFFECTS wrote", name)
		}
	}
}
