package check

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// Violation is one key whose history is not linearizable, told through
// the operations that show it: the last ones of the longest order the
// checker could build, then the operation that no order could place
// next (the earliest to return among those left).
type Violation struct {
	Key string
	Ops []string
}

// Verdict is the outcome of a check with its evidence.
type Verdict struct {
	Result     porcupine.CheckResult
	Violations []Violation
	info       porcupine.LinearizationInfo
}

// Visualize writes porcupine's interactive view of the history (a
// self-contained HTML page) to w.
func (v Verdict) Visualize(w io.Writer) error {
	return porcupine.Visualize(RegisterModel, v.info, w)
}

// CheckRegistersExplained checks h like CheckRegisters and, when it is
// not linearizable, names the keys and operations that show it.
func CheckRegistersExplained(h *History, timeout time.Duration) Verdict {
	ops := h.Operations()
	// The plain check is much cheaper than the verbose one (which records
	// partial orders for every key), and a passing run needs no evidence.
	start := time.Now()
	if res := porcupine.CheckOperationsTimeout(RegisterModel, ops, timeout); res != porcupine.Illegal {
		return Verdict{Result: res}
	}
	res, info := porcupine.CheckOperationsVerbose(RegisterModel, ops, max(timeout-time.Since(start), time.Minute))
	v := Verdict{Result: porcupine.Illegal, info: info}
	if res != porcupine.Illegal {
		return v // the evidence could not be gathered in time; the verdict stands
	}
	// Partitions come back in RegisterModel.Partition's order; a key is
	// linearizable exactly when some partial order covers all its ops.
	parts := RegisterModel.Partition(ops)
	for i, orders := range info.PartialLinearizationsOperations() {
		if i >= len(parts) {
			break
		}
		longest := slices.MaxFunc(orders, func(a, b []porcupine.Operation) int { return len(a) - len(b) })
		if len(longest) == len(parts[i]) {
			continue
		}
		v.Violations = append(v.Violations, explain(parts[i], longest))
	}
	return v
}

func explain(all, order []porcupine.Operation) Violation {
	key := all[0].Input.(RegisterInput).Key
	// A client has one operation in flight at a time, so (client, call)
	// identifies an operation.
	type id struct {
		client int
		call   int64
	}
	placed := map[id]bool{}
	for _, op := range order {
		placed[id{op.ClientId, op.Call}] = true
	}
	var out []string
	for _, op := range order[max(0, len(order)-6):] {
		out = append(out, "ok:      "+describe(op))
	}
	next := -1
	for i, op := range all {
		if !placed[id{op.ClientId, op.Call}] && (next < 0 || op.Return < all[next].Return) {
			next = i
		}
	}
	if next >= 0 {
		out = append(out, "cannot follow: "+describe(all[next]))
	}
	return Violation{Key: key, Ops: out}
}

// describe prints an operation with its client and its call and return
// times in milliseconds since the history began.
func describe(op porcupine.Operation) string {
	ret := "?"
	if op.Return != maxReturn {
		ret = fmt.Sprintf("%.1f", float64(op.Return)/1e6)
	}
	return fmt.Sprintf("client %d, %.1f–%s ms: %s", op.ClientId, float64(op.Call)/1e6, ret,
		RegisterModel.DescribeOperation(op.Input, op.Output))
}
