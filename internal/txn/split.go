package txn

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// plan is a transaction cut into per-partition shares.
type plan struct {
	groups   []uint64 // participants, the record's partition first
	cmds     map[uint64][][][]byte
	watches  map[uint64][]Watch
	specs    []*command.Spec // per original command
	pieces   [][]piece       // per original command, its shares
	readOnly bool
	// msetnx is set for a lone cross-partition MSETNX (a command whose
	// shares merge all or nothing): a share answering 0 votes to abort,
	// and the whole command answers 0.
	msetnx bool
}

// piece is one partition's share of one command.
type piece struct {
	group uint64
	index int   // position among that partition's commands
	pos   []int // MGET: where each of its keys sits in the original reply
}

// makePlan splits cmds (decoded: known commands, right arity, keys found)
// and watches by partition.
func makePlan(cmds []command.Cmd, watches []Watch, partition func([]byte) uint64) (*plan, error) {
	p := &plan{cmds: map[uint64][][][]byte{}, watches: map[uint64][]Watch{}, readOnly: true}
	use := func(g uint64) {
		if _, ok := p.cmds[g]; !ok {
			p.cmds[g] = nil
			p.groups = append(p.groups, g)
		}
	}
	for _, c := range cmds {
		s, args := c.Spec, c.Args
		if kv.Of(s) == nil {
			return nil, &InternalError{Msg: fmt.Sprintf("not a data command: %q", args[0])}
		}
		p.readOnly = p.readOnly && !s.Is(command.Write)
		p.specs = append(p.specs, s)
		byGroup := map[uint64][]int{} // group -> key positions in c.Keys
		var order []uint64
		for i, k := range c.Keys {
			g := partition(args[k])
			if _, ok := byGroup[g]; !ok {
				order = append(order, g)
			}
			byGroup[g] = append(byGroup[g], i)
		}
		if len(order) == 0 { // a keyless data command (none exist today)
			order = []uint64{partition(nil)}
		}
		if len(order) > 1 {
			switch s.Merge {
			case command.MergeNone:
				return nil, &InternalError{Msg: s.Name + " cannot span partitions"}
			case command.MergeAllOrNothing:
				if len(cmds) > 1 {
					return nil, ErrCrossMSETNX
				}
				p.msetnx = true
			}
		}
		var ps []piece
		for _, g := range order {
			use(g)
			sub := args
			if len(order) > 1 {
				sub = [][]byte{args[0]}
				for _, i := range byGroup[g] {
					sub = append(sub, args[c.Keys[i]:c.Keys[i]+s.Step]...)
				}
			}
			ps = append(ps, piece{group: g, index: len(p.cmds[g]), pos: byGroup[g]})
			p.cmds[g] = append(p.cmds[g], sub)
		}
		p.pieces = append(p.pieces, ps)
	}
	for _, w := range watches {
		g := partition(w.Key)
		use(g)
		p.watches[g] = append(p.watches[g], w)
	}
	return p, nil
}

// merge assembles the EXEC reply from each partition's replies.
// A share missing or malformed is a bug of the protocol, answered as an
// InternalError, never a panic.
func (p *plan) merge(replies map[uint64][][]byte) ([]byte, error) {
	out := resp.AppendArrayHeader(nil, len(p.pieces))
	for i, ps := range p.pieces {
		one, err := p.mergeOne(p.specs[i], ps, replies)
		if err != nil {
			return nil, err
		}
		out = append(out, one...)
	}
	return out, nil
}

// mergeOne makes one command's reply from its shares' replies, as its
// Spec.Merge says.
func (p *plan) mergeOne(spec *command.Spec, ps []piece, replies map[uint64][][]byte) ([]byte, error) {
	parts := make([][]byte, len(ps))
	keys := 0
	for i, pc := range ps {
		rs := replies[pc.group]
		if pc.index >= len(rs) { // a share that never answered: a bug, not a panic
			return nil, &InternalError{Msg: "a share of the " + strings.ToUpper(spec.Name) + " reply is missing"}
		}
		parts[i] = rs[pc.index]
		keys += len(pc.pos)
		if len(ps) > 1 && bytes.HasPrefix(parts[i], []byte("-")) {
			return parts[i], nil
		}
	}
	if len(ps) == 1 {
		return parts[0], nil
	}
	switch spec.Merge {
	case command.MergeSum:
		var n int64
		for _, b := range parts {
			v, _, err := resp.ParseValue(b)
			if err != nil || v.Kind != ':' {
				return b, nil
			}
			n += v.Int
		}
		return resp.AppendInt(nil, n), nil
	case command.MergeByPosition:
		elems := make([][]byte, keys)
		for i, b := range parts {
			vals, ok := SplitArray(b)
			if !ok || len(vals) != len(ps[i].pos) {
				return nil, &InternalError{Msg: "malformed " + strings.ToUpper(spec.Name) + " share"}
			}
			for j, pos := range ps[i].pos {
				elems[pos] = vals[j]
			}
		}
		out := resp.AppendArrayHeader(nil, len(elems))
		for _, e := range elems {
			out = append(out, e...)
		}
		return out, nil
	case command.MergeAllOrNothing:
		for _, b := range parts {
			if string(b) != ":1\r\n" {
				return resp.AppendInt(nil, 0), nil
			}
		}
		return resp.AppendInt(nil, 1), nil
	}
	return parts[0], nil // MergeFirst: every share answers alike (MSET: OK)
}
