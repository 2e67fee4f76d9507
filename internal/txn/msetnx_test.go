package txn

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A cross-partition MSETNX whose keys already exist in one partition
// answers 0 and sets nothing, whichever partition holds the existing key,
// and also when another partition's share met a lock in the same round:
// the merge must not read a share that never answered (it used to index
// past it and panic the node — redis-py's test_msetnx, pipelined).
func TestCrossPartitionMSETNXVetoed(t *testing.T) {
	for _, tc := range []struct {
		name, existing string
		lockB1         bool
	}{
		{"first partition", "a1", false},
		{"second partition", "b1", false},
		{"last partition", "c1", false},
		{"vetoed while another share is locked", "a1", true},
		{"vetoed by one share while another is locked", "c1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(4)
			s.set(tc.existing, "old")
			want := tc.existing + `="old"`
			if tc.lockB1 {
				// A transaction that started later (younger) holds b1's
				// lock; its coordinator died after preparing.
				s.now = s.now.Add(time.Minute)
				s.crashAt, s.applied = 2, true
				if _, crashed := s.exec(cmds("SET d1 1", "SET b1 1"), nil); !crashed {
					t.Fatal("the holder did not stop after its prepares")
				}
				s.crashAt = 0
				s.now = s.now.Add(-2 * time.Minute)
			}
			c := NewCoordinator(s.config(), s)
			if got := shown(c.Run(context.Background(), decodeCmd("MSETNX a1 x b1 y c1 z"))); got != "0" {
				t.Fatalf("MSETNX answered %s, want 0", got)
			}
			if err := s.recover(); err != nil {
				t.Fatal(err)
			}
			if got := s.state(); got != want {
				t.Fatalf("state %s, want %s", got, want)
			}
			if got := shown(c.Run(context.Background(), decodeCmd("MSETNX a2 x b2 y c2 z"))); got != "1" {
				t.Fatalf("a later MSETNX of fresh keys answered %s, want 1", got)
			}
		})
	}
}

// A split command's reply whose share is missing or malformed (a bug of
// the protocol) is an InternalError, never a panic or a reply made up of
// whatever arrived.
func TestMergeOfABrokenShareIsAnError(t *testing.T) {
	p, err := makePlan(cmds("MGET a1 b1"), nil, partitionOf)
	if err != nil {
		t.Fatal(err)
	}
	var ie *InternalError
	for name, replies := range map[string]map[uint64][][]byte{
		"missing":   {0: {[]byte("*1\r\n$1\r\nx\r\n")}},
		"malformed": {0: {[]byte("*1\r\n$1\r\nx\r\n")}, 1: {[]byte("*2\r\n$1\r\ny\r\n$1\r\nz\r\n")}},
	} {
		if out, err := p.merge(replies); !errors.As(err, &ie) {
			t.Errorf("%s share: merge answered %q, %v; want an InternalError", name, out, err)
		}
	}
	out, err := p.merge(map[uint64][][]byte{0: {[]byte("*1\r\n$1\r\nx\r\n")}, 1: {[]byte("*1\r\n$1\r\ny\r\n")}})
	if err != nil || string(out) != "*1\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n" {
		t.Fatalf("whole shares merged into %q, %v", out, err)
	}
}
