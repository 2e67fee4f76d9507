package raftstore

import (
	"math/rand/v2"
	"testing"
	"time"
)

const testLease = 100 * time.Millisecond

var voters3 = []uint64{1, 2, 3}

func TestLeaseNeedsEveryVoter(t *testing.T) {
	var l leaderLease
	l.issue(5, 0, voters3, 1, testLease) // position 1
	if l.answer(5, 2, 1, voters3, 1, testLease) || l.valid(5, time.Millisecond) {
		t.Fatal("a quorum's answers earned a lease; every voter's are needed")
	}
	if l.answer(5, 1, 1, voters3, 1, testLease) || l.answer(5, 9, 1, voters3, 1, testLease) {
		t.Fatal("the leader's own or a non-voter's answer counted")
	}
	if l.answer(5, 3, 0, voters3, 1, testLease) {
		t.Fatal("an answer to no request yet (position 0) counted")
	}
	if !l.answer(5, 3, 1, voters3, 1, testLease) {
		t.Fatal("every voter answered, no lease")
	}
	for _, tc := range []struct {
		term  uint64
		at    time.Duration
		valid bool
	}{
		{5, 0, true}, {5, testLease - 1, true}, {5, testLease, false}, {6, time.Millisecond, false},
	} {
		if got := l.valid(tc.term, tc.at); got != tc.valid {
			t.Errorf("valid(term %d, at %v) = %v, want %v", tc.term, tc.at, got, tc.valid)
		}
	}
	// The lease counts from the issue, not from the last answer.
	if got := l.left(5, 30*time.Millisecond); got != testLease-30*time.Millisecond {
		t.Errorf("left %v", got)
	}
}

// An answer covers every request up to its position, and none after.
func TestLeaseAnswersCoverByPosition(t *testing.T) {
	var l leaderLease
	l.issue(5, 0, voters3, 1, testLease)                   // 1
	l.issue(5, 10*time.Millisecond, voters3, 1, testLease) // 2
	l.issue(5, 20*time.Millisecond, voters3, 1, testLease) // 3
	l.answer(5, 2, 2, voters3, 1, testLease)
	l.answer(5, 3, 3, voters3, 1, testLease)
	if !l.valid(5, 105*time.Millisecond) || l.valid(5, 110*time.Millisecond) {
		t.Fatalf("answers up to 2 and 3 should earn the lease of request 2 (until 110 ms): until %v", l.until)
	}
	l.answer(5, 2, 3, voters3, 1, testLease)
	if !l.valid(5, 115*time.Millisecond) {
		t.Fatal("request 3 answered by everyone, lease not extended")
	}
}

func TestLeaseDropVoidsRoundsInFlight(t *testing.T) {
	var l leaderLease
	l.issue(5, 0, voters3, 1, testLease)
	l.answer(5, 2, 1, voters3, 1, testLease)
	l.drop() // a transfer started, a conf change was appended, a peer went down
	l.answer(5, 3, 1, voters3, 1, testLease)
	if l.valid(5, time.Millisecond) {
		t.Fatal("a request made before a drop earned a lease after it")
	}
	l.issue(5, 10*time.Millisecond, voters3, 1, testLease) // 2
	if l.valid(5, 20*time.Millisecond) {
		t.Fatal("answers from before the request earned its lease")
	}
	l.answer(5, 2, 2, voters3, 1, testLease)
	l.answer(5, 3, 2, voters3, 1, testLease)
	if !l.valid(5, 20*time.Millisecond) {
		t.Fatal("a request made after the drop earned nothing")
	}
	l.drop()
	if l.valid(5, 20*time.Millisecond) {
		t.Fatal("a drop left the lease valid")
	}
}

func TestLeaseTermAndMembership(t *testing.T) {
	var l leaderLease
	l.issue(5, 0, []uint64{1}, 1, testLease)
	if !l.valid(5, 0) {
		t.Fatal("a group whose only voter leads holds no lease")
	}
	l.issue(6, time.Millisecond, []uint64{1, 2}, 1, testLease)
	if l.answer(5, 2, 1, []uint64{1, 2}, 1, testLease) {
		t.Fatal("an answer in another term counted")
	}
	if l.valid(6, 2*time.Millisecond) {
		t.Fatal("the lease of term 5 held in term 6")
	}
	var m leaderLease
	m.issue(5, 0, []uint64{2, 3}, 1, testLease)
	m.answer(5, 2, 1, []uint64{2, 3}, 1, testLease)
	m.answer(5, 3, 1, []uint64{2, 3}, 1, testLease)
	if m.valid(5, 0) {
		t.Fatal("a leader that is not a voter earned a lease")
	}
}

// TestLeaseNeverOutlivesItsRounds drives random requests, answers, drops
// and term changes and checks, against a plain model, that the lease is
// valid only when some request of the term asked about, made after the
// last drop and younger than the lease, was answered (at its position or
// later) by every other voter after it was made.
func TestLeaseNeverOutlivesItsRounds(t *testing.T) {
	type round struct {
		term, pos uint64
		issued    time.Duration
		answered  map[uint64]bool
		void      bool
	}
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 7))
		var l leaderLease
		var model []*round
		var now time.Duration
		term, pos := uint64(1), uint64(0)
		for step := range 400 {
			switch rng.IntN(10) {
			case 0, 1:
				pos++
				l.issue(term, now, voters3, 1, testLease)
				model = append(model, &round{term: term, pos: pos, issued: now, answered: map[uint64]bool{}})
			case 2, 3, 4, 5:
				// Answers name a position already requested, as raft's do.
				p := uint64(rng.IntN(int(pos) + 1))
				from := uint64(rng.IntN(4)) + 1
				at := term
				if rng.IntN(8) == 0 && term > 1 {
					at = term - 1
				}
				l.answer(at, from, p, voters3, 1, testLease)
				for _, r := range model {
					if r.term == at && r.pos <= p && !r.void {
						r.answered[from] = true
					}
				}
			case 6:
				l.drop()
				for _, r := range model {
					r.void = true
				}
			case 7:
				if rng.IntN(4) == 0 {
					term++
					pos = 0
					for _, r := range model {
						r.void = true // raft starts counting again
					}
				}
			default:
				now += time.Duration(rng.IntN(40)) * time.Millisecond
			}
			allowed := false
			for _, r := range model {
				if !r.void && r.term == term && r.answered[2] && r.answered[3] && now < r.issued+testLease {
					allowed = true
				}
			}
			if l.valid(term, now) && !allowed {
				t.Fatalf("seed %d step %d: lease valid at %v in term %d with no request to back it", seed, step, now, term)
			}
		}
	}
}
