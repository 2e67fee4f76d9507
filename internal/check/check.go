// Package check verifies histories recorded against a Kintsu cluster. A
// History collects operations from many concurrent clients with monotonic
// timestamps; CheckRegisters decides, with porcupine, whether the
// operations on each key (reads, writes, compare-and-sets) form a
// linearizable register.
//
// An operation whose outcome is unknown (a write that timed out or was
// answered -UNCERTAIN) is recorded as pending forever: it may take effect
// at any point after its call, which is exactly what a client must assume.
// An unknown compare-and-set that takes effect does so as a compare-and-set;
// one that never took effect is linearized after everything else, where it
// changes nothing anyone saw.
package check

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Op kinds.
const (
	Read  = "get"
	Write = "set"
	CAS   = "cas" // SET key Value IFEQ Expect
)

// RegisterInput is an operation on one key.
type RegisterInput struct {
	Kind   string
	Key    string
	Value  string // Write, CAS: the value written
	Expect string // CAS: the value compared with
}

// RegisterOutput is what an operation returned.
type RegisterOutput struct {
	Value  string // Read: the value seen
	Exists bool   // Read: whether the key existed
	// Swapped: a CAS found Expect and wrote Value.
	Swapped bool
	// Unknown: the outcome was never learned (set by History.Unknown).
	Unknown bool
}

// History records operations concurrently.
type History struct {
	start time.Time
	clock func() int64 // nil: time since start
	mu    sync.Mutex
	ops   []porcupine.Operation // guarded by mu
}

// NewHistory starts an empty history; timestamps count from now.
func NewHistory() *History { return &History{start: time.Now()} }

// NewHistoryAt returns a history stamped by clock, which must never go
// back (a simulator's time): porcupine needs only ordered integers.
func NewHistoryAt(clock func() int64) *History { return &History{clock: clock} }

// Now is the history's monotonic clock, for Call and Return stamps.
func (h *History) Now() int64 {
	if h.clock != nil {
		return h.clock()
	}
	return int64(time.Since(h.start))
}

// Ok records a completed operation.
func (h *History) Ok(client int, in RegisterInput, out RegisterOutput, call, ret int64) {
	h.add(porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret})
}

// maxReturn is the return time of an operation that never returned.
const maxReturn = math.MaxInt64

// Unknown records a write whose outcome is unknown: it stays pending until
// the end of time.
func (h *History) Unknown(client int, in RegisterInput, call int64) {
	h.add(porcupine.Operation{ClientId: client, Input: in, Output: RegisterOutput{Unknown: true}, Call: call, Return: maxReturn})
}

func (h *History) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Len returns the number of recorded operations.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops)
}

// Unknowns returns how many recorded operations have an unknown outcome,
// and the most of them on one key: what makes a history hard to check.
func (h *History) Unknowns() (total, worstKey int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	per := map[string]int{}
	for _, op := range h.ops {
		if op.Output.(RegisterOutput).Unknown {
			total++
			k := op.Input.(RegisterInput).Key
			per[k]++
			worstKey = max(worstKey, per[k])
		}
	}
	return total, worstKey
}

// Operations returns a copy of the recorded operations.
func (h *History) Operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

type regState struct {
	value  string
	exists bool
}

// RegisterModel is a set of independent registers, one per key, each
// starting absent.
var RegisterModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(RegisterInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return regState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(regState), input.(RegisterInput), output.(RegisterOutput)
		switch in.Kind {
		case Write:
			return true, regState{value: in.Value, exists: true}
		case CAS:
			match := st.exists && st.value == in.Expect
			next := st
			if match {
				next = regState{value: in.Value, exists: true}
			}
			return out.Unknown || out.Swapped == match, next
		default:
			return out.Exists == st.exists && out.Value == st.value, st
		}
	},
	Equal: func(a, b any) bool { return a.(regState) == b.(regState) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(RegisterInput), output.(RegisterOutput)
		switch {
		case in.Kind == Write:
			return fmt.Sprintf("set(%s, %s)", in.Key, in.Value)
		case in.Kind == CAS && out.Unknown:
			return fmt.Sprintf("cas(%s, %s→%s) -> ?", in.Key, in.Expect, in.Value)
		case in.Kind == CAS:
			return fmt.Sprintf("cas(%s, %s→%s) -> %v", in.Key, in.Expect, in.Value, out.Swapped)
		}
		if !out.Exists {
			return fmt.Sprintf("get(%s) -> nil", in.Key)
		}
		return fmt.Sprintf("get(%s) -> %s", in.Key, out.Value)
	},
}

// CheckRegisters checks h against RegisterModel within timeout.
func CheckRegisters(h *History, timeout time.Duration) porcupine.CheckResult {
	return porcupine.CheckOperationsTimeout(RegisterModel, h.Operations(), timeout)
}
