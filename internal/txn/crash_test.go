package txn

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/crashpoints.txt from the current protocol")

// crashScenario is one transaction run with a crash at every point.
type crashScenario struct {
	name     string
	initial  []string // key, value pairs
	cmds     []string
	watches  []string // keys watched at their initial version
	readKeys []string // MGET'd by a reader right after the crash
	// locking: read-only transactions take shared locks at once, as they
	// do after their lock-free attempts failed (Config.OptimisticReads).
	locking bool
}

var crashScenarios = []crashScenario{
	{name: "transfer across two partitions", initial: []string{"a1", "100", "b1", "0"},
		cmds: []string{"DECRBY a1 10", "INCRBY b1 10"}, readKeys: []string{"a1", "b1"}},
	{name: "three partitions, reads and writes", initial: []string{"a1", "x", "c1", "5"},
		cmds: []string{"SET a1 y", "GET c1", "INCR c1", "MSET b1 1 b2 2", "DEL a2"}, readKeys: []string{"a1", "b1", "b2", "c1"}},
	{name: "one command across partitions", initial: []string{"a1", "1"},
		cmds: []string{"MSET a1 x b1 y c1 z"}, readKeys: []string{"a1", "b1", "c1"}},
	{name: "read only", initial: []string{"a1", "1", "b1", "2"},
		cmds: []string{"MGET a1 b1 c1"}, readKeys: []string{"a1", "b1"}},
	{name: "read only, with locks", initial: []string{"a1", "1", "b1", "2"},
		cmds: []string{"MGET a1 b1 c1"}, readKeys: []string{"a1", "b1"}, locking: true},
	{name: "watched keys", initial: []string{"a1", "1", "b1", "2"},
		cmds: []string{"SET c1 3"}, watches: []string{"a1", "b1"}, readKeys: []string{"a1", "b1", "c1"}},
	{name: "msetnx across partitions", initial: []string{},
		cmds: []string{"MSETNX a1 1 b1 2"}, readKeys: []string{"a1", "b1"}},
}

// phaseOf names the protocol phase a crash leaves behind, from the
// operations that took effect.
func phaseOf(effective []string, groups int) string {
	prepares, commit, resolves, gc := 0, false, 0, false
	for _, op := range effective {
		switch {
		case strings.HasPrefix(op, opPrepare):
			prepares++
		case strings.HasPrefix(op, opCommit):
			commit = true
		case strings.HasPrefix(op, opAbort):
			return "after the abort"
		case strings.HasPrefix(op, opResolve):
			resolves++
		case strings.HasPrefix(op, opGC):
			gc = true
		}
	}
	switch {
	case gc:
		return "after resolution"
	case resolves > 0:
		return "during resolution"
	case commit:
		return "after the decision"
	case prepares == 0:
		return "before prepare"
	case prepares < groups:
		return "between prepares"
	}
	return "after all prepares"
}

func (sc *crashScenario) setup() (*sim, []Watch) {
	s := newSim(3)
	if sc.locking {
		s.optimisticReads = -1
	}
	s.set(sc.initial...)
	var ws []Watch
	for _, k := range sc.watches {
		v, _ := s.groups[partitionOf([]byte(k))].Version([]byte(k))
		ws = append(ws, Watch{Key: []byte(k), Version: v})
	}
	return s, ws
}

// TestEveryCrashPoint runs each scenario once to learn its operations,
// then again with the coordinator stopped at each one, before and after it
// takes effect. After every crash: a reader sees all of the transaction or
// none of it; recovery leaves no lock, part or record; the data is all or
// nothing, and all exactly when the COMMIT took effect. The outcomes are
// compared with testdata/crashpoints.txt (-update rewrites it).
func TestEveryCrashPoint(t *testing.T) {
	var golden strings.Builder
	for _, sc := range crashScenarios {
		fmt.Fprintf(&golden, "scenario: %s\n  initial: %s\n  commands: %s\n", sc.name, strings.Join(sc.initial, " "), strings.Join(sc.cmds, " | "))
		if len(sc.watches) > 0 {
			fmt.Fprintf(&golden, "  watches: %s\n", strings.Join(sc.watches, " "))
		}
		s, ws := sc.setup()
		before := s.state()
		reply, crashed := s.exec(cmds(sc.cmds...), ws)
		if crashed {
			t.Fatalf("%s: crashed without a crash point", sc.name)
		}
		if err := s.recover(); err != nil {
			t.Fatalf("%s: after a clean run: %v", sc.name, err)
		}
		after := s.state()
		calls := s.trace
		ops := strings.Join(calls, " ")
		if len(calls) == 0 {
			ops = fmt.Sprintf("none (%d lock-free snapshot reads)", s.reads)
		}
		fmt.Fprintf(&golden, "  reply: %s\n  before: %s\n  after:  %s\n  operations: %s\n", show(reply), before, after, ops)
		groups := 0
		for _, op := range calls {
			if strings.HasPrefix(op, opPrepare) {
				groups++
			}
		}
		for k := 1; k <= len(calls); k++ {
			for _, applied := range []bool{false, true} {
				s, ws := sc.setup()
				s.crashAt, s.applied = k, applied
				if _, crashed := s.exec(cmds(sc.cmds...), ws); !crashed {
					t.Fatalf("%s: crash point %d not reached", sc.name, k)
				}
				effective := append([]string(nil), calls[:k-1]...)
				when := "before"
				if applied {
					effective = append(effective, calls[k-1])
					when = "after "
				}
				decided := false
				for _, op := range effective {
					decided = decided || strings.HasPrefix(op, opCommit)
				}
				want := before
				if decided {
					want = after
				}
				// A reader right after the crash sees all or nothing, and
				// exactly what the decision says.
				s.crashAt = 0
				read := cmds("MGET " + strings.Join(sc.readKeys, " "))
				seen, _ := s.exec(read, nil)
				if err := s.recover(); err != nil {
					t.Errorf("%s: crash %d %s %s: %v", sc.name, k, when, calls[k-1], err)
					continue
				}
				got := s.state()
				outcome := "nothing applied"
				switch got {
				case after:
					outcome = "all applied"
				case before:
				default:
					outcome = "HALF APPLIED: " + got
				}
				if got != want {
					t.Errorf("%s: crash %d %s %s: state %s, want %s", sc.name, k, when, calls[k-1], got, want)
				}
				if final, _ := s.exec(read, nil); show(final) != show(seen) {
					t.Errorf("%s: crash %d %s %s: a reader saw %s, the recovered state holds %s", sc.name, k, when, calls[k-1], show(seen), show(final))
				}
				fmt.Fprintf(&golden, "  crash %d %s %-14s %-20s -> %s; reader saw %s\n", k, when, calls[k-1], "("+phaseOf(effective, groups)+")", outcome, show(seen))
			}
		}
		golden.WriteString("\n")
	}
	path := "testdata/crashpoints.txt"
	if *update {
		if err := os.WriteFile(path, []byte(golden.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != golden.String() {
		t.Errorf("crash point outcomes differ from %s (run with -update after checking the difference):\n%s", path, golden.String())
	}
}
