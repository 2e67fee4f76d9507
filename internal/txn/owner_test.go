package txn

import (
	"testing"

	"github.com/kintsu/kintsu/internal/failure"
)

// splitGroup is a memGroup whose partition was split: keys starting with
// "r" left it.
type splitGroup struct{ *memGroup }

func (s splitGroup) Ranged() bool       { return true }
func (s splitGroup) Owns(k []byte) bool { return len(k) == 0 || k[0] != 'r' }

// A transaction's share naming a key its partition no longer owns is
// refused whole with WrongGroup: nothing applied, and the refusal is not
// kept for retries (the router sends it where the key lives now).
func TestShareWithAMovedKeyIsRefused(t *testing.T) {
	g := splitGroup{newMemGroup()}
	for _, cmds := range [][][][]byte{
		{{[]byte("set"), []byte("left"), []byte("1")}, {[]byte("set"), []byte("right"), []byte("1")}},
		{{[]byte("get"), []byte("right")}},
	} {
		g.refused = false
		out, err := Apply(g, exec1Args(nil, cmds), nil)
		if err != nil || !failure.WrongGroup.Is(out) || !g.refused {
			t.Fatalf("exec1 %q: %q %v refused=%v, want WrongGroup, refused", cmds, out, err, g.refused)
		}
		if _, ok, _ := g.Get([]byte("left")); ok {
			t.Fatal("the share's other write was applied")
		}
	}
	out, err := Apply(g, exec1Args([]Watch{{Key: []byte("right")}}, [][][]byte{{[]byte("set"), []byte("left"), []byte("1")}}), nil)
	if err != nil || !failure.WrongGroup.Is(out) {
		t.Fatalf("a watch on a moved key: %q %v, want WrongGroup", out, err)
	}
}
