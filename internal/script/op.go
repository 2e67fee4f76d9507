package script

import (
	"errors"
	"time"

	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/txn"
)

// Params are what a run needs besides its steps.
type Params struct {
	Group      uint64 // the partition it runs in
	Partitions int    // the cluster's partition count (which keys are local)
	Timeout    time.Duration
	// User is the ACL user the scripts' commands are checked against,
	// as "NAME RULES..." (edge.scriptRules); "" for one that may run
	// anything.
	User string
	// Multi: the steps are a transaction's (MULTI ... EXEC), answered as
	// an array, and only if every watched key still has its version.
	Multi   bool
	Watches []txn.Watch
	// Float: the script declared no keys, so it may run where the first
	// key it touches lives (Moved), not only in Group.
	Float bool
}

// Step is a script to run, or (Cmd set) a data command queued in a
// transaction with scripts.
type Step struct {
	Body       []byte
	Keys, Argv [][]byte
	ReadOnly   bool // EVAL_RO, EVALSHA_RO, FCALL_RO, or a no-writes flag
	Cmd        [][]byte
	// Function, when set, names the function to call (FCALL): Body is
	// then its library's code.
	Function string
	// DenyOOM: the node was over maxmemory, so the script's writes that
	// may grow memory fail as Redis's do then (a script without flags).
	DenyOOM bool
}

// Args is the Op that runs steps with p.
func Args(p Params, steps ...Step) [][]byte {
	e := codec.Encoder(nil).Uvarint(p.Group).Uvarint(uint64(p.Partitions)).Uvarint(uint64(p.Timeout / time.Millisecond))
	e = e.Bytes([]byte(p.User)).Byte(boolByte(p.Multi) | boolByte(p.Float)<<1).Uvarint(uint64(len(p.Watches)))
	for _, w := range p.Watches {
		e = e.Bytes(w.Key).Uvarint(w.Version)
	}
	e = e.Uvarint(uint64(len(steps)))
	for _, s := range steps {
		if s.Cmd != nil {
			e = e.Byte('c').Args(s.Cmd)
			continue
		}
		if s.Function != "" {
			e = e.Byte('f').Bytes([]byte(s.Function))
		} else {
			e = e.Byte('s')
		}
		e = e.Bytes(s.Body).Args(s.Keys).Args(s.Argv).Byte(boolByte(s.ReadOnly) | boolByte(s.DenyOOM)<<1)
	}
	return [][]byte{[]byte(Op), e}
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// maxSteps bounds a transaction's steps, as the edge bounds what MULTI
// may queue.
const maxSteps = 1 << 16

// Decode reads an Op's arguments back.
func Decode(args [][]byte) (Params, []Step, error) { return decodeOp(args) }

func decodeOp(args [][]byte) (Params, []Step, error) {
	if len(args) != 2 {
		return Params{}, nil, errors.New("malformed")
	}
	d := codec.NewDecoder(args[1])
	p := Params{Group: d.Uvarint(), Partitions: int(d.Uvarint())}
	p.Timeout = time.Duration(min(d.Uvarint(), uint64(MaxRunTime/time.Millisecond))) * time.Millisecond
	p.User = string(d.Bytes())
	flags := d.Byte()
	p.Multi, p.Float = flags&1 != 0, flags&2 != 0
	if flags > 3 || p.Multi && p.Float {
		d.Fail()
	}
	for n := d.Count(); n > 0 && d.Err() == nil; n-- {
		p.Watches = append(p.Watches, txn.Watch{Key: d.Bytes(), Version: d.Uvarint()})
	}
	n := d.Count()
	if n > maxSteps || n == 0 || n > 1 && !p.Multi {
		d.Fail()
	}
	var steps []Step
	for ; n > 0 && d.Err() == nil; n-- {
		switch tag := d.Byte(); tag {
		case 'c':
			c := d.Args()
			if len(c) == 0 {
				d.Fail()
			}
			steps = append(steps, Step{Cmd: c})
		case 's', 'f':
			var fn []byte
			if tag == 'f' {
				if fn = d.Bytes(); !ValidName(string(fn)) {
					d.Fail()
				}
			}
			s := Step{Function: string(fn), Body: d.Bytes(), Keys: d.Args(), Argv: d.Args()}
			flags := d.Byte()
			s.ReadOnly, s.DenyOOM = flags&1 != 0, flags&2 != 0
			if flags > 3 {
				d.Fail()
			}
			if len(s.Body) > MaxBodyBytes {
				d.Fail()
			}
			steps = append(steps, s)
		default:
			d.Fail()
		}
	}
	if err := d.Done(); err != nil {
		return p, nil, err
	}
	// Partitions is the cluster's initial count: groups born of splits
	// have ids past it (below the metadata group's).
	if p.Partitions < 1 || p.Partitions > ring.SlotCount || p.Group >= 1<<32 {
		return p, nil, errors.New("bad partitions")
	}
	return p, steps, nil
}
