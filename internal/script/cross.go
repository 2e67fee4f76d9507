package script

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/txn"
)

// Scripts whose declared keys live in several partitions.
//
// No leader holds all of such a script's keys, so it cannot run in one
// partition's state machine. The node that received it runs it instead
// (RunOver), against a private copy of its declared keys (scratch.go):
// each key's value as a DUMP payload and its expiry, read from its
// partition together with its version. What the script wrote comes back
// as the final image of every key it wrote, and the edge commits those
// images (RESTORE ... REPLACE ABSTTL, or DEL) as one transaction that
// applies only if every declared key still has the version it was read
// at; otherwise it reads again and runs the script again.
//
// Invariants:
//   - The script sees its keys as they were at one moment, and its writes
//     apply at one later moment with no declared key changed in between,
//     so it is serializable with every other command, like a script of
//     one partition.
//   - Nothing it did is visible before the transaction commits, and a
//     run stopped by a limit commits nothing.
//   - It touches only its declared keys (an undeclared key answers as
//     Redis Cluster's non-local key does): the transaction covers exactly
//     the keys it could have read.
//   - The copies it holds are bounded (MaxImageBytes), like every run's
//     time and heap.

// Image is one key as a cross-partition script sees it: its value as a
// DUMP payload (nil: absent) and its expiry (Unix ms, -1: none).
type Image struct {
	Key      []byte
	Payload  []byte
	ExpireAt int64
}

// Outcome is what a run against copies did.
type Outcome struct {
	Reply []byte
	// Halted: a limit (time, memory, SCRIPT KILL, the reply's size)
	// stopped the run; nothing it did may be kept.
	Halted bool
	// Writes are the final images of the keys it wrote, in the order
	// first written.
	Writes []Image
}

// MaxImageBytes bounds the copies of keys one run holds.
const MaxImageBytes = 64 << 20

// ErrImagesTooLarge answers a script whose keys' copies would pass
// MaxImageBytes.
const ErrImagesTooLarge = "ERR the keys of a script that spans partitions hold more than 64 MiB"

// RunOver runs step against copies of its declared keys, as of nowMS,
// with p's user and time limit (p.Group, p.Partitions, p.Multi and
// p.Float do not apply). An error is a failure of the copies themselves.
func RunOver(p Params, step Step, keys []Image, nowMS int64) (Outcome, error) {
	if step.Cmd != nil {
		return Outcome{}, errors.New("not a script")
	}
	user, err := parseUser(p.User)
	if err != nil {
		return Outcome{Reply: resp.AppendError(nil, "ERR malformed script operation"), Halted: true}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(p.Timeout, MaxRunTime))
	defer cancel()
	release, ok := takeSlot(ctx)
	if !ok {
		return Outcome{Reply: resp.AppendError(nil, errBusy), Halted: true}, nil
	}
	defer release()
	proto, err := compiled(step.Body, step.Function != "")
	if err != nil {
		return Outcome{Reply: resp.AppendError(nil, err.Error()), Halted: true}, nil
	}
	sc := newScratch(nowMS)
	declared := map[string]bool{}
	size := 0
	for _, im := range keys {
		declared[string(im.Key)] = true
		if im.Payload == nil {
			continue
		}
		if ctx.Err() != nil { // building the copies counts in the run's time
			return Outcome{Reply: resp.AppendError(nil, errTimedOut), Halted: true}, nil
		}
		if size += len(im.Key) + len(im.Payload); size > MaxImageBytes {
			return Outcome{Reply: resp.AppendError(nil, ErrImagesTooLarge), Halted: true}, nil
		}
		ttl := "0"
		if im.ExpireAt > 0 {
			ttl = strconv.FormatInt(im.ExpireAt, 10)
		}
		out, err := exec(sc, "restore", im.Key, []byte(ttl), im.Payload, []byte("replace"), []byte("absttl"))
		if err != nil {
			return Outcome{}, err
		}
		if string(out) != "+OK\r\n" {
			return Outcome{}, errors.New("a key's copy does not restore: " + strings.TrimSpace(string(out)))
		}
	}
	spec := txn.Speculate(sc)
	local := func(k []byte) bool { return declared[string(k)] }
	reply, halted, err := run(ctx, proto, spec, local, user, SHA1(step.Body), step, nil)
	if err != nil || halted {
		return Outcome{Reply: reply, Halted: halted}, err
	}
	o := Outcome{Reply: reply}
	for _, k := range spec.Written() {
		im, err := imageOf(spec, k)
		if err != nil {
			return Outcome{}, err
		}
		o.Writes = append(o.Writes, im)
	}
	return o, nil
}

// imageOf reads key's final value and expiry through the speculation.
func imageOf(w kv.Writer, key []byte) (Image, error) {
	im := Image{Key: key, ExpireAt: -1}
	out, err := exec(w, "dump", key)
	if err != nil {
		return im, err
	}
	v, _, perr := resp.ParseValue(out)
	if perr != nil || v.Kind != '$' {
		return im, errors.New("a key's copy does not dump")
	}
	if v.Null {
		return im, nil
	}
	im.Payload = v.Str
	if out, err = exec(w, "pexpiretime", key); err != nil {
		return im, err
	}
	if v, _, perr = resp.ParseValue(out); perr != nil || v.Kind != ':' {
		return im, errors.New("a key's copy has no expiry reply")
	}
	im.ExpireAt = v.Int
	return im, nil
}

func exec(w kv.Writer, name string, args ...[]byte) ([]byte, error) {
	full := append([][]byte{[]byte(name)}, args...)
	return kv.Exec(w, command.Lookup(full[0]), full, nil)
}

// parseUser reads Params.User: nil for a user who may run anything.
func parseUser(rules string) (*acl.User, error) {
	if rules == "" {
		return nil, nil
	}
	name, rest, _ := strings.Cut(rules, " ")
	return acl.Parse(name, rest)
}

// takeSlot waits, within ctx, for one of the node's run slots.
func takeSlot(ctx context.Context) (release func(), ok bool) {
	select {
	case runSlots <- struct{}{}:
		return func() { <-runSlots }, true
	case <-ctx.Done():
		return nil, false
	}
}
