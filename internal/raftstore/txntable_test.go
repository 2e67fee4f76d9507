package raftstore

import (
	"bytes"
	"fmt"
	"testing"
)

// A transaction table is held in memory only within its bounds (records
// and bytes): past them it forgets its records (reads go to disk) while
// still counting exactly, and it holds them again once the table is
// empty, whether the records came from writes or from a load.
func TestTxnTableIsBounded(t *testing.T) {
	big := bytes.Repeat([]byte("v"), 1000)
	for _, c := range []struct {
		name  string
		n     int
		value func(k []byte) []byte
	}{
		{"records", mirrorRecords + 10, func(k []byte) []byte { return k }},
		{"bytes", mirrorBytes/len(big) + 10, func([]byte) []byte { return big }},
	} {
		for _, how := range []string{"put", "load"} {
			t.Run(c.name+"/"+how, func(t *testing.T) {
				lt := newTxnTable()
				for i := range c.n {
					k := fmt.Appendf(nil, "k%d", i)
					if how == "put" {
						lt.put(k, c.value(k), false)
					} else {
						lt.load(k, c.value(k))
					}
					if lt.recs != nil && (len(lt.recs) > mirrorRecords || lt.size > mirrorBytes) {
						t.Fatalf("%d records of %d bytes held in memory, bounds %d and %d", len(lt.recs), lt.size, mirrorRecords, mirrorBytes)
					}
				}
				if lt.recs != nil {
					t.Fatalf("%d records held past the bounds", len(lt.recs))
				}
				if _, _, known := lt.get([]byte("k1")); known {
					t.Fatal("an incomplete table answered a read")
				}
				if lt.n != int64(c.n) {
					t.Fatalf("count %d, want %d", lt.n, c.n)
				}
				rebuilds := 0
				for i := range c.n {
					if lt.del(fmt.Appendf(nil, "k%d", i), true) {
						rebuilds++
						if lt.n != rebuildAt {
							t.Fatalf("rebuild asked at %d records, want %d", lt.n, rebuildAt)
						}
					}
					if lt.recs != nil && lt.n != 0 {
						t.Fatalf("complete again with %d records left", lt.n)
					}
				}
				if want := min(1, c.n/(rebuildAt+1)); rebuilds != want {
					t.Fatalf("%d rebuilds asked on the way down, want %d", rebuilds, want)
				}
				if lt.recs == nil || lt.n != 0 || lt.size != 0 {
					t.Fatalf("empty table: count %d, size %d, complete %v", lt.n, lt.size, lt.recs != nil)
				}
				lt.put([]byte("a"), []byte("1"), false)
				if v, ok, known := lt.get([]byte("a")); !known || !ok || string(v) != "1" {
					t.Fatalf("read a: %q %v %v", v, ok, known)
				}
				v, _, _ := lt.get([]byte("a"))
				v[0] = 'x' // a caller changing what it read changes nothing held
				if v, _, _ := lt.get([]byte("a")); string(v) != "1" {
					t.Fatalf("read a after a caller's change: %q", v)
				}
				lt.put([]byte("a"), []byte("22"), true)
				lt.del([]byte("a"), true)
				if lt.size != 0 || lt.n != 0 {
					t.Fatalf("after overwrite and delete: size %d, count %d", lt.size, lt.n)
				}
			})
		}
	}
}
