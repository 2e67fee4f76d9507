package edge

import (
	"errors"
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/resp"
)

// TestKeyStateOfSeesARaceOnAnAbsentKey: a key whose version says absent
// but whose later reads find it was written between them; its watch
// (absent) could pass again at commit with that value used, so the round
// must start over.
func TestKeyStateOfSeesARaceOnAnAbsentKey(t *testing.T) {
	replies := func(version int64, typ string, payload []byte) [][]byte {
		dump := resp.AppendNull(nil)
		if payload != nil {
			dump = resp.AppendBulk(nil, payload)
		}
		return [][]byte{resp.AppendInt(nil, version), resp.AppendSimple(nil, typ), dump, resp.AppendInt(nil, -1)}
	}
	errs := make([]error, 4)
	if _, err := keyStateOf([]byte("k"), replies(0, "string", []byte("x")), errs, 0, true); !errors.Is(err, errKeyRaced) {
		t.Fatalf("absent by version, present by DUMP: %v", err)
	}
	if _, err := keyStateOf([]byte("k"), replies(0, "set", nil)[:2], errs, 0, false); !errors.Is(err, errKeyRaced) {
		t.Fatalf("absent by version, present by TYPE: %v", err)
	}
	st, err := keyStateOf([]byte("k"), replies(0, "none", nil), errs, 0, true)
	if err != nil || st.payload != nil {
		t.Fatalf("absent throughout: %+v %v", st, err)
	}
	st, err = keyStateOf([]byte("k"), replies(7, "string", []byte("x")), errs, 0, true)
	if err != nil || st.version != 7 || string(st.payload) != "x" {
		t.Fatalf("present throughout: %+v %v", st, err)
	}
}

// TestUnrestorableRefusesBeforeTheTransaction: a RESTORE its partition
// would refuse is found before the transaction, since it would fail
// alone while the rest applied.
func TestUnrestorableRefusesBeforeTheTransaction(t *testing.T) {
	cmds := [][][]byte{{[]byte("del"), []byte("a")}, {[]byte("restore"), []byte("b"), []byte("0"), []byte("not a payload"), []byte("replace")}}
	if reply := unrestorable(cmds); !strings.Contains(string(reply), "'b' is too large to move") {
		t.Fatalf("%q", reply)
	}
	if reply := unrestorable(cmds[:1]); reply != nil {
		t.Fatalf("no RESTORE: %q", reply)
	}
}
