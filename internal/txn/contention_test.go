package txn

import (
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/resp"
)

// transferOnRead makes every snapshot read of partition 1 (key b1) first
// move 10 from a1 (partition 0) to b1, up to n times: a transfer lands
// between a read of a1 and a read of b1.
func transferOnRead(t *testing.T, s *sim, n int) *int {
	done, busy := 0, false
	s.onRead = func(g uint64, args [][]byte) {
		if g != 1 || string(args[0]) != opSnap || busy || done == n {
			return
		}
		busy = true
		defer func() { busy = false }()
		w := NewCoordinator(s.config(), s)
		if got := shown(w.Exec(context.Background(), cmds("DECRBY a1 10", "INCRBY b1 10"), nil)); strings.HasPrefix(got, "(error)") {
			t.Fatalf("transfer answered %s", got)
		}
		done++
	}
	return &done
}

// sumOf adds the two values of an EXEC reply holding one MGET of a1, b1.
func sumOf(t *testing.T, reply []byte) int {
	t.Helper()
	v, _, err := resp.ParseValue(reply)
	if err != nil || len(v.Array) != 1 || len(v.Array[0].Array) != 2 {
		t.Fatalf("MGET answered %s", show(reply))
	}
	sum := 0
	for _, e := range v.Array[0].Array {
		n, _ := strconv.Atoi(string(e.Str))
		sum += n
	}
	return sum
}

// A read-only transaction over two partitions reads without locks, twice.
// Transfers that land between its reads of a1 and b1 make its first round
// show half a transfer; the second round sees a1's version moved, so it
// reads again, and the answer is one consistent cut.
func TestOptimisticReadRetriesWhenAKeyChanges(t *testing.T) {
	s := newSim(3)
	s.set("a1", "100", "b1", "0")
	done := transferOnRead(t, s, 2)
	reply, _ := NewCoordinator(s.config(), s).Exec(context.Background(), cmds("MGET a1 b1"), nil)
	if *done != 2 {
		t.Fatalf("%d transfers ran between the reads, want 2", *done)
	}
	if got := show(reply); got != `[["80", "20"]]` {
		t.Fatalf("the read saw %s, want the state after both transfers", got)
	}
	// Two attempts of two rounds over two partitions; no lock was taken.
	if s.reads != 8 {
		t.Fatalf("%d snapshot reads, want 8", s.reads)
	}
	if prepares := strings.Count(strings.Join(s.trace, " "), opPrepare); prepares != 2*2 {
		t.Fatalf("%d PREPAREs for two transfers: the reader took locks", prepares)
	}
}

// When writers keep changing the keys, the reader stops trying without
// locks after Config.OptimisticReads attempts and takes shared locks,
// which no transfer can get past: it finishes, with a consistent cut.
func TestOptimisticReadFallsBackToLocks(t *testing.T) {
	s := newSim(3)
	s.set("a1", "100", "b1", "0")
	done := transferOnRead(t, s, 1000)
	reply, _ := NewCoordinator(s.config(), s).Exec(context.Background(), cmds("MGET a1 b1"), nil)
	if sum := sumOf(t, reply); sum != 100 {
		t.Fatalf("the read saw %s (sum %d)", show(reply), sum)
	}
	// Three lock-free attempts of four reads, then one read of its own
	// record after the locked reads.
	if want := 3*4 + 1; s.reads != want || *done != 2*3 {
		t.Fatalf("%d snapshot reads and %d transfers, want %d and %d", s.reads, *done, want, 2*3)
	}
}

// An older transaction that meets a younger one's lock wounds it and
// prepares that participant again within the same attempt, keeping the
// locks it holds elsewhere (wound-wait), instead of releasing everything
// and starting over.
func TestOlderTransactionWoundsAndPreparesAgain(t *testing.T) {
	s := newSim(3)
	s.set("a1", "100", "b1", "0", "c1", "0")
	// The younger transaction prepares b1 and c1, and its coordinator dies
	// before deciding: its record stays PENDING, its locks held.
	s.crashAt, s.applied = 2, true
	if _, crashed := s.exec(cmds("INCRBY b1 1", "INCRBY c1 1"), nil); !crashed {
		t.Fatal("the younger transaction did not stop after its prepares")
	}
	s.crashAt, s.trace = 0, nil
	s.now = s.now.Add(-time.Minute) // the next transaction started earlier: it is older
	if got := shown(NewCoordinator(s.config(), s).Exec(context.Background(), cmds("DECRBY a1 10", "INCRBY b1 10"), nil)); got != "[90, 10]" {
		t.Fatalf("the older transaction answered %s", got)
	}
	trace := strings.Join(s.trace, " ")
	if n := strings.Count(trace, opPrepare+"@1"); n != 2 || strings.Contains(trace, opAbort+"@0") || strings.Count(trace, opCommit) != 1 {
		t.Fatalf("want one attempt that prepared b1's partition twice after wounding the holder; operations: %s", trace)
	}
	if got := s.state(); got != `a1="90" b1="10" c1="0"` {
		t.Fatalf("state %s", got)
	}
}

// A read-only transaction that takes shared locks answers only if its
// record is still PENDING after its last PREPARE: an older writer that
// wounded it between two PREPAREs released its first lock and changed the
// key, so what it read there is no longer part of one cut.
func TestWoundedLockingReaderReadsAgain(t *testing.T) {
	s := newSim(3)
	s.set("a1", "100", "b1", "0")
	s.optimisticReads = -1
	wounded := false
	s.onWrite = func(g uint64, args [][]byte) {
		if wounded || g != 1 || string(args[0]) != opPrepare {
			return
		}
		wounded = true
		s.now = s.now.Add(-time.Minute) // older than the reader
		w := NewCoordinator(s.config(), s)
		if got := shown(w.Exec(context.Background(), cmds("DECRBY a1 10", "INCRBY b1 10"), nil)); got != "[90, 10]" {
			t.Fatalf("the older transfer answered %s", got)
		}
	}
	reply, _ := NewCoordinator(s.config(), s).Exec(context.Background(), cmds("MGET a1 b1"), nil)
	if !wounded {
		t.Fatal("the transfer never ran: the test proves nothing")
	}
	if got := show(reply); got != `[["90", "10"]]` {
		t.Fatalf("the reader saw %s, want the state after the transfer", got)
	}
}

// A watched key that expires between WATCH and EXEC has changed, as in
// Redis 6.0.9 and later; one that had already expired at WATCH and is
// still absent has not.
func TestWatchedKeyThatExpires(t *testing.T) {
	for _, c := range []struct {
		name      string
		expiresAt int64 // a1's expiry
		want      string
	}{
		{"expires after WATCH", simNow + 1000, "(nil array)"},
		{"already expired at WATCH", simNow - 1, "[OK]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSim(3)
			s.set("a1", "x")
			g := s.groups[0]
			stored := binary.BigEndian.AppendUint64([]byte{'S'}, uint64(c.expiresAt))
			g.data["a1"] = append(binary.BigEndian.AppendUint64(nil, g.index), append(stored, 'x')...)
			v, err := liveVersion(g, []byte("a1"))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range s.groups {
				m.nowMS = simNow + 2000 // the EXEC runs after a1's time
			}
			co := NewCoordinator(s.config(), s)
			got := shown(co.Exec(context.Background(), cmds("SET b1 1"), []Watch{{Key: []byte("a1"), Version: v}}))
			if got != c.want {
				t.Fatalf("EXEC answered %s, want %s", got, c.want)
			}
			// The metrics count it by how it ended.
			want := Stats{Committed: 1}
			if got == "(nil array)" {
				want = Stats{WatchFailed: 1}
			}
			if st := co.Stats(); st != want {
				t.Fatalf("stats %+v, want %+v", st, want)
			}
		})
	}
}
