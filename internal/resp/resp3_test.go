package resp

import "testing"

func TestToRESP3Shapes(t *testing.T) {
	for _, c := range []struct {
		in    string
		shape Shape
		want  string
	}{
		{"+OK\r\n", ShapePlain, "+OK\r\n"},
		{"$1\r\nx\r\n", ShapePlain, "$1\r\nx\r\n"},
		{"$-1\r\n", ShapePlain, "_\r\n"},
		{"*-1\r\n", ShapePlain, "_\r\n"},
		{"*2\r\n$-1\r\n*1\r\n$-1\r\n", ShapePlain, "*2\r\n_\r\n*1\r\n_\r\n"},
		{"-ERR x\r\n", ShapeMap, "-ERR x\r\n"},
		{"*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$-1\r\n", ShapeMap, "%2\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n_\r\n"},
		{"*3\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n", ShapeMap, "*3\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n"}, // odd: left an array
		{"*1\r\n$1\r\na\r\n", ShapeSet, "~1\r\n$1\r\na\r\n"},
		{"$3\r\n2.5\r\n", ShapeDouble, ",2.5\r\n"},
		{"$3\r\ninf\r\n", ShapeDouble, ",inf\r\n"},
		{"$-1\r\n", ShapeDouble, "_\r\n"},
		{"*2\r\n$1\r\n1\r\n$-1\r\n", ShapeDoubles, "*2\r\n,1\r\n_\r\n"},
		{"*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n", ShapeScorePairs, "*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2\r\n"},
		{"*2\r\n$1\r\nf\r\n$1\r\nv\r\n", ShapePairs, "*1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"},
		{"*3\r\n$1\r\nk\r\n$1\r\nm\r\n$1\r\n3\r\n", ShapeLastDouble, "*3\r\n$1\r\nk\r\n$1\r\nm\r\n,3\r\n"},
		{"*0\r\n", ShapeLastDouble, "*0\r\n"},
		{"*2\r\n$1\r\nk\r\n*1\r\n*2\r\n$1\r\nm\r\n$1\r\n3\r\n", ShapeKeyScores, "*2\r\n$1\r\nk\r\n*1\r\n*2\r\n$1\r\nm\r\n,3\r\n"},
		{"$2\r\nhi\r\n", ShapeVerbatim, "=6\r\ntxt:hi\r\n"},
		{"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nd\r\n:2\r\n", ShapePush,
			">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n>3\r\n$9\r\nsubscribe\r\n$1\r\nd\r\n:2\r\n"},
		{"%1\r\n+a\r\n+b\r\n", ShapePlain, "%1\r\n+a\r\n+b\r\n"}, // RESP3 already: as it is
		{"*2\r\n$1\r\na\r\n", ShapePlain, "*2\r\n$1\r\na\r\n"},   // cut short: as it is
	} {
		if got := string(ToRESP3([]byte(c.in), c.shape)); got != c.want {
			t.Errorf("%q as %d: %q, want %q", c.in, c.shape, got, c.want)
		}
	}
}

// A plain reply without nulls is the same bytes, not a copy (a big MGET
// must not cost its size again on a RESP3 connection).
func TestToRESP3PlainWithoutNullsIsNotCopied(t *testing.T) {
	reply := AppendArrayHeader(nil, 1000)
	for range 1000 {
		reply = AppendBulkString(reply, "value")
	}
	if out := ToRESP3(reply, ShapePlain); &out[0] != &reply[0] || len(out) != len(reply) {
		t.Fatal("a reply without nulls was copied")
	}
	reply = AppendNull(reply[:len(reply):len(reply)])
	reply[1] = '9' // not a valid count now: left as it is
	if out := ToRESP3(reply, ShapePlain); &out[0] != &reply[0] {
		t.Fatal("a malformed reply was rewritten")
	}
}
