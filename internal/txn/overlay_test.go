package txn

import (
	"slices"
	"strings"
	"testing"
)

// TestOverlayScanSubMerges: a PREPARE's commands see their own sub-key
// writes merged into the partition's, in order both ways, deletions
// hiding stored sub-keys, and a new collection's version past every
// version the overlay wrote.
func TestOverlayScanSubMerges(t *testing.T) {
	g := newMemGroup()
	k := []byte("h")
	for _, s := range []string{"b", "d", "f"} {
		if err := g.PutSub(k, 7, []byte(s), []byte("base-"+s)); err != nil {
			t.Fatal(err)
		}
	}
	o := newOverlay(g)
	_ = o.PutSub(k, 7, []byte("a"), []byte("ov-a"))
	_ = o.PutSub(k, 7, []byte("d"), []byte("ov-d"))
	_ = o.DelSub(k, 7, []byte("f"))
	_ = o.PutSub(k, 7, []byte("g"), []byte("ov-g"))
	_ = o.PutSub(k, 8, []byte("x"), []byte("other version"))

	scan := func(from string, reverse bool, limit int) string {
		var got []string
		var f []byte
		if from != "" {
			f = []byte(from)
		}
		if err := o.ScanSub(k, 7, f, reverse, func(sub, v []byte) bool {
			got = append(got, string(sub)+"="+string(v))
			return len(got) < limit
		}); err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, " ")
	}
	for _, c := range []struct {
		from    string
		reverse bool
		limit   int
		want    string
	}{
		{"", false, 99, "a=ov-a b=base-b d=ov-d g=ov-g"},
		{"", true, 99, "g=ov-g d=ov-d b=base-b a=ov-a"},
		{"c", false, 99, "d=ov-d g=ov-g"},
		{"e", true, 99, "d=ov-d b=base-b a=ov-a"},
		{"", false, 2, "a=ov-a b=base-b"},
		{"", true, 1, "g=ov-g"},
	} {
		if got := scan(c.from, c.reverse, c.limit); got != c.want {
			t.Errorf("ScanSub(from %q, reverse %v, limit %d) = %q, want %q", c.from, c.reverse, c.limit, got, c.want)
		}
	}
	if v, _ := o.NewVersion(k); v <= 8 {
		t.Fatalf("NewVersion = %d, not past the overlay's version 8", v)
	}
	// The intents follow the key's own, sorted, so every replica encodes
	// the same part.
	var subs []string
	for _, pk := range o.subIntents(k) {
		subs = append(subs, string(pk.intent)+string(pk.key[8:]))
	}
	if want := []string{"Pa", "Pd", "Df", "Pg", "Px"}; !slices.Equal(subs, want) {
		t.Fatalf("sub intents %v, want %v", subs, want)
	}
}
