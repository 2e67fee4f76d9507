package check

import (
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The checker must accept linearizable histories and reject a stale read.
func TestCheckRegisters(t *testing.T) {
	h := NewHistory()
	h.Ok(0, RegisterInput{Kind: Write, Key: "k", Value: "1"}, RegisterOutput{}, 0, 10)
	h.Ok(1, RegisterInput{Kind: Read, Key: "k"}, RegisterOutput{Value: "1", Exists: true}, 11, 20)
	h.Ok(1, RegisterInput{Kind: Read, Key: "other"}, RegisterOutput{}, 11, 20)
	// A write with unknown outcome may be seen or not, at any later time.
	h.Unknown(2, RegisterInput{Kind: Write, Key: "k", Value: "2"}, 21)
	h.Ok(1, RegisterInput{Kind: Read, Key: "k"}, RegisterOutput{Value: "1", Exists: true}, 30, 40)
	h.Ok(1, RegisterInput{Kind: Read, Key: "k"}, RegisterOutput{Value: "2", Exists: true}, 50, 60)
	if r := CheckRegisters(h, 10*time.Second); r != porcupine.Ok {
		t.Fatalf("linearizable history judged %s", r)
	}
	// Reading the old value after a newer one was read is a stale read.
	h.Ok(1, RegisterInput{Kind: Read, Key: "k"}, RegisterOutput{Value: "1", Exists: true}, 70, 80)
	if r := CheckRegisters(h, 10*time.Second); r != porcupine.Illegal {
		t.Fatalf("stale read judged %s", r)
	}
}

// Compare-and-set: a swap must find its expected value; a refusal must not;
// two swaps from the same value cannot both succeed (a lost update).
func TestCheckRegistersCAS(t *testing.T) {
	cas := func(expect, value string) RegisterInput {
		return RegisterInput{Kind: CAS, Key: "k", Expect: expect, Value: value}
	}
	base := func() *History {
		h := NewHistory()
		h.Ok(0, RegisterInput{Kind: Write, Key: "k", Value: "a"}, RegisterOutput{}, 0, 10)
		return h
	}
	cases := []struct {
		name string
		ops  func(h *History)
		want porcupine.CheckResult
	}{
		{"swap from the current value", func(h *History) {
			h.Ok(1, cas("a", "b"), RegisterOutput{Swapped: true}, 20, 30)
			h.Ok(1, RegisterInput{Kind: Read, Key: "k"}, RegisterOutput{Value: "b", Exists: true}, 40, 50)
		}, porcupine.Ok},
		{"refusal on another value", func(h *History) {
			h.Ok(1, cas("x", "b"), RegisterOutput{}, 20, 30)
			h.Ok(1, RegisterInput{Kind: Read, Key: "k"}, RegisterOutput{Value: "a", Exists: true}, 40, 50)
		}, porcupine.Ok},
		{"swap from a value it cannot have seen", func(h *History) {
			h.Ok(1, cas("x", "b"), RegisterOutput{Swapped: true}, 20, 30)
		}, porcupine.Illegal},
		{"refusal although the value matched", func(h *History) {
			h.Ok(1, cas("a", "b"), RegisterOutput{}, 20, 30)
		}, porcupine.Illegal},
		{"two concurrent swaps from one value", func(h *History) {
			h.Ok(1, cas("a", "b"), RegisterOutput{Swapped: true}, 20, 40)
			h.Ok(2, cas("a", "c"), RegisterOutput{Swapped: true}, 21, 41)
		}, porcupine.Illegal},
		{"unknown swap seen later", func(h *History) {
			h.Unknown(1, cas("a", "b"), 20)
			h.Ok(2, RegisterInput{Kind: Read, Key: "k"}, RegisterOutput{Value: "b", Exists: true}, 40, 50)
		}, porcupine.Ok},
		{"unknown swap never seen", func(h *History) {
			h.Unknown(1, cas("a", "b"), 20)
			h.Ok(2, RegisterInput{Kind: Read, Key: "k"}, RegisterOutput{Value: "a", Exists: true}, 40, 50)
		}, porcupine.Ok},
		{"unknown swap cannot invent a value", func(h *History) {
			h.Unknown(1, cas("x", "b"), 20)
			h.Ok(2, RegisterInput{Kind: Read, Key: "k"}, RegisterOutput{Value: "b", Exists: true}, 40, 50)
		}, porcupine.Illegal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := base()
			c.ops(h)
			if r := CheckRegisters(h, 10*time.Second); r != c.want {
				t.Fatalf("judged %s, want %s", r, c.want)
			}
		})
	}
}

// A violation names its key and the operation that cannot be placed.
func TestCheckRegistersExplained(t *testing.T) {
	h := NewHistory()
	h.Ok(0, RegisterInput{Kind: Write, Key: "fine", Value: "1"}, RegisterOutput{}, 0, 10)
	h.Ok(0, RegisterInput{Kind: Write, Key: "k", Value: "a"}, RegisterOutput{}, 0, 10)
	h.Ok(1, RegisterInput{Kind: CAS, Key: "k", Expect: "a", Value: "b"}, RegisterOutput{Swapped: true}, 20, 40)
	h.Ok(2, RegisterInput{Kind: CAS, Key: "k", Expect: "a", Value: "c"}, RegisterOutput{Swapped: true}, 21, 41)
	v := CheckRegistersExplained(h, 10*time.Second)
	if v.Result != porcupine.Illegal || len(v.Violations) != 1 || v.Violations[0].Key != "k" {
		t.Fatalf("verdict %s, violations %+v", v.Result, v.Violations)
	}
	ops := v.Violations[0].Ops
	if last := ops[len(ops)-1]; !strings.HasPrefix(last, "cannot follow: ") || !strings.Contains(last, "cas(k, a→") {
		t.Fatalf("explanation %q", ops)
	}
	var b strings.Builder
	if err := v.Visualize(&b); err != nil || !strings.Contains(b.String(), "<html") {
		t.Fatalf("visualization: %v (%d bytes)", err, b.Len())
	}
}
