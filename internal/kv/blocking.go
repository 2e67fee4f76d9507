package kv

import (
	"bytes"
	"math"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// The blocking pops. Applied from the log (and inside MULTI) they never
// block: each is its non-blocking form, answering what Redis answers
// inside MULTI when there is nothing to pop. Outside MULTI the edge waits
// until one of the keys holds something and then proposes the command
// (edge/blocking.go): the log's order decides which waiter gets an
// element, and each element goes to one of them.
func init() {
	blocking := func(c *Command) *Command { c.Flags |= command.Blocking; return c }
	register(command.List,
		blocking(writer("blpop", -3, 1, -2, 1, evalBpop(true))),
		blocking(writer("brpop", -3, 1, -2, 1, evalBpop(false))),
		blocking(writer("brpoplpush", 4, 1, 2, 1, evalBrpoplpush)),
		blocking(writer("blmove", 6, 1, 2, 1, evalBlmove)),
	)
	register(command.SortedSet,
		blocking(writer("bzpopmin", -3, 1, -2, 1, evalBzpop(false))),
		blocking(writer("bzpopmax", -3, 1, -2, 1, evalBzpop(true))),
		blocking(numKeys(writer("bzmpop", -5, 0, 0, 0, evalBmpop(evalZmpop)), 2)),
	)
	register(command.List, blocking(numKeys(writer("blmpop", -5, 0, 0, 0, evalBmpop(evalLmpop)), 2)))
}

// BlockTimeout reads a blocking command's timeout (seconds, a float, as
// Redis's getTimeoutFromObjectOrReply): 0 waits for ever; the error is
// Redis's reply.
func BlockTimeout(arg []byte) (ms int64, msg string) {
	f, ok := parseLongDouble(arg)
	if !ok {
		return 0, "ERR timeout is not a float or out of range"
	}
	secs, _ := f.Float64()
	if math.IsInf(secs, 0) || math.IsNaN(secs) || secs*1000 > math.MaxInt64/2 || secs*1000 < math.MinInt64/2 {
		return 0, "ERR timeout is out of range"
	}
	ms = int64(secs * 1000)
	if ms < 0 {
		return 0, "ERR timeout is negative"
	}
	return ms, ""
}

// BlockingArgs checks a blocking command's arguments in Redis's order
// (BLMOVE's directions before its timeout) and returns its timeout, or
// Redis's error.
func BlockingArgs(spec *command.Spec, args [][]byte) (ms int64, msg string) {
	switch spec.Name {
	case "blmove": // arity 6, checked before
		if _, _, ok := sides(args[3], args[4]); !ok {
			return 0, ErrSyntax
		}
	case "blmpop", "bzmpop": // the rest first, then the timeout
		if msg := bmpopArgs(spec.Name, args); msg != "" {
			return 0, msg
		}
		return BlockTimeout(args[1])
	}
	return BlockTimeout(args[len(args)-1])
}

// BlockingSources are the keys a blocking command pops from (every key
// but the destination of BRPOPLPUSH and BLMOVE), for the edge's wait.
func BlockingSources(spec *command.Spec, args [][]byte) [][]byte {
	switch spec.Name {
	case "brpoplpush", "blmove":
		return args[1:2]
	case "blmpop", "bzmpop":
		var keys [][]byte
		for _, i := range spec.AppendKeys(nil, args) {
			keys = append(keys, args[i])
		}
		return keys
	}
	return args[1 : len(args)-1]
}

// BlockingDestination is the key a blocking move writes (BRPOPLPUSH,
// BLMOVE), nil for a pop.
func BlockingDestination(spec *command.Spec, args [][]byte) []byte {
	if spec.Name == "brpoplpush" || spec.Name == "blmove" {
		return args[2]
	}
	return nil
}

// bmpopArgs checks BLMPOP's and BZMPOP's arguments after the timeout.
func bmpopArgs(name string, args [][]byte) string {
	left, right := "left", "right"
	if name == "bzmpop" {
		left, right = "min", "max"
	}
	_, _, _, msg := parseMpop(args, 2, left, right)
	return msg
}

// evalBmpop is BLMPOP's and BZMPOP's non-blocking form: LMPOP's and
// ZMPOP's, once the arguments and then the timeout are checked.
func evalBmpop(pop writeFunc) writeFunc {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		if msg := bmpopArgs(string(bytes.ToLower(args[0])), args); msg != "" {
			return appendErr(out, msg), nil
		}
		if _, msg := BlockTimeout(args[1]); msg != "" {
			return appendErr(out, msg), nil
		}
		return pop(w, append([][]byte{args[0]}, args[2:]...), out)
	}
}

func evalBpop(left bool) writeFunc {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		if _, msg := BlockTimeout(args[len(args)-1]); msg != "" {
			return appendErr(out, msg), nil
		}
		for _, k := range args[1 : len(args)-1] {
			l, err := loadList(w, k)
			if err != nil || l.wrong {
				return wrongOr(out, err)
			}
			if !l.ok {
				continue
			}
			v, err := l.pop(w, left)
			if err != nil {
				return out, err
			}
			if err := l.save(w, k); err != nil {
				return out, err
			}
			out = resp.AppendArrayHeader(out, 2)
			return resp.AppendBulk(resp.AppendBulk(out, k), v), nil
		}
		return resp.AppendNullArray(out), nil
	}
}

func evalBrpoplpush(w Writer, args [][]byte, out []byte) ([]byte, error) {
	if _, msg := BlockTimeout(args[3]); msg != "" {
		return appendErr(out, msg), nil
	}
	return lmove(w, args[1], args[2], false, true, out)
}

func evalBlmove(w Writer, args [][]byte, out []byte) ([]byte, error) {
	from, to, ok := sides(args[3], args[4])
	if !ok {
		return appendErr(out, ErrSyntax), nil
	}
	if _, msg := BlockTimeout(args[5]); msg != "" {
		return appendErr(out, msg), nil
	}
	return lmove(w, args[1], args[2], from, to, out)
}

func evalBzpop(max bool) writeFunc {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		if _, msg := BlockTimeout(args[len(args)-1]); msg != "" {
			return appendErr(out, msg), nil
		}
		for _, k := range args[1 : len(args)-1] {
			z, err := loadZset(w, k)
			if err != nil || z.wrong {
				return wrongOr(out, err)
			}
			if !z.ok {
				continue
			}
			var it zitem
			found := false
			if err := z.walk(w, max, nil, func(m []byte, f float64) bool {
				it, found = zitem{m: append([]byte(nil), m...), f: f}, true
				return false
			}); err != nil {
				return out, err
			}
			if !found { // a record counting members that are not stored
				return out, errHole
			}
			if err := z.del(w, it.m, it.f); err != nil {
				return out, err
			}
			z.popped(it.f, it.m, max)
			if err := z.save(w, k); err != nil {
				return out, err
			}
			out = resp.AppendArrayHeader(out, 3)
			return appendScore(resp.AppendBulk(resp.AppendBulk(out, k), it.m), it.f), nil
		}
		return resp.AppendNullArray(out), nil
	}
}

// BlockedReply is what a blocking command answers when its timeout
// passes: a null array, as Redis's replyToBlockedClientTimedOut.
func BlockedReply() []byte { return resp.AppendNullArray(nil) }
