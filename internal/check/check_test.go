package check

import (
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
