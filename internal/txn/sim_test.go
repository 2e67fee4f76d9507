package txn

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// memGroup is one partition's replicated state in memory: what a log
// entry's apply sees through Store.
type memGroup struct {
	index uint64
	data  map[string][]byte // version (8 bytes) + stored value
	kv.MemSubs
	tables  map[byte]map[string][]byte
	refused bool
	nowMS   int64 // what NowMS answers; 0 means simNow
}

// simNow is the partitions' time unless a test moves it.
const simNow int64 = 1_700_000_000_000

func newMemGroup() *memGroup {
	return &memGroup{index: 10, data: map[string][]byte{}, tables: map[byte]map[string][]byte{
		TableLocks: {}, TableParts: {}, TableRecords: {},
	}}
}

func (m *memGroup) Get(k []byte) ([]byte, bool, error) {
	v, ok := m.data[string(k)]
	if !ok {
		return nil, false, nil
	}
	return v[8:], true, nil
}

func (m *memGroup) Version(k []byte) (uint64, error) {
	v, ok := m.data[string(k)]
	if !ok {
		return 0, nil
	}
	return binary.BigEndian.Uint64(v), nil
}

func (m *memGroup) Applied() (uint64, error) { return m.index, nil }

func (m *memGroup) NewVersion(k []byte) (uint64, error) { return m.VersionAt(k, m.index), nil }

func (m *memGroup) NowMS() int64 {
	if m.nowMS == 0 {
		return simNow
	}
	return m.nowMS
}

func (m *memGroup) Put(k, v []byte, created bool) error {
	if _, ok := m.data[string(k)]; ok == created {
		return fmt.Errorf("put %q: created=%v but exists=%v", k, created, ok)
	}
	m.data[string(k)] = append(binary.BigEndian.AppendUint64(nil, m.index), v...)
	return nil
}

func (m *memGroup) Del(k []byte) error {
	return m.del(k)
}

func (m *memGroup) PutBlind(k, v []byte) error {
	_, ok := m.data[string(k)]
	return m.Put(k, v, !ok)
}

func (m *memGroup) del(k []byte) error {
	if _, ok := m.data[string(k)]; !ok {
		return fmt.Errorf("del of missing key %q", k)
	}
	delete(m.data, string(k))
	return nil
}

func (m *memGroup) TxnGet(t byte, k []byte) ([]byte, bool, error) {
	v, ok := m.tables[t][string(k)]
	return v, ok, nil
}

func (m *memGroup) NoLocks() bool { return len(m.tables[TableLocks]) == 0 }

func (m *memGroup) TxnPut(t byte, k, v []byte) error {
	m.tables[t][string(k)] = bytes.Clone(v)
	return nil
}

func (m *memGroup) TxnDel(t byte, k []byte) error {
	delete(m.tables[t], string(k))
	return nil
}

func (m *memGroup) Refuse() { m.refused = true }

// apply is what a node's apply function does with a committed command.
// A refused command's writes are discarded, as the engine would never
// have made them (applyExec1 and plain commands refuse before writing).
func (m *memGroup) apply(args [][]byte) []byte {
	m.index++
	m.refused = false
	var out []byte
	var err error
	spec := command.Lookup(args[0])
	if IsOp(args[0]) {
		out, err = Apply(m, args, nil)
	} else if hs, berr := Blocked(m, spec, args); berr != nil {
		err = berr
	} else if len(hs) > 0 {
		m.Refuse()
		out = LockedReply(nil, hs)
	} else {
		out, err = kv.Exec(m, spec, args, nil)
	}
	if err != nil {
		panic(err)
	}
	return out
}

func (m *memGroup) read(args [][]byte) []byte {
	var out []byte
	var err error
	spec := command.Lookup(args[0])
	if IsOp(args[0]) {
		out, err = Read(m, args, nil)
	} else if hs, berr := Blocked(m, spec, args); berr != nil {
		err = berr
	} else if len(hs) > 0 {
		out = LockedReply(nil, hs)
	} else {
		out, err = kv.Of(spec).Read(m, args, nil)
	}
	if err != nil {
		panic(err)
	}
	return out
}

// userData renders a group's user data without versions.
func (m *memGroup) userData() map[string]string {
	out := map[string]string{}
	for k, v := range m.data {
		out[k] = string(v[8:])
	}
	return out
}

func (m *memGroup) clone() *memGroup {
	c := &memGroup{index: m.index, data: maps.Clone(m.data), tables: map[byte]map[string][]byte{}}
	for t, tab := range m.tables {
		c.tables[t] = maps.Clone(tab)
	}
	return c
}

// sim is a cluster of partitions applying operations one at a time, with
// a crash point: the crashAt-th Write of the coordinator stops it, before
// or after the operation takes effect.
type sim struct {
	groups  map[uint64]*memGroup
	calls   int
	crashAt int  // 0: never
	applied bool // the crashing call takes effect before the crash
	trace   []string
	now     time.Time
	crashed bool
	origins uint64 // coordinators created so far: each is a new process
	// optimisticReads is the coordinators' Config.OptimisticReads.
	optimisticReads int
	// onRead, when set, runs before every Read (it may change the state).
	onRead func(g uint64, args [][]byte)
	reads  int
	// onWrite, when set, runs before every Write (it may change the state).
	onWrite func(g uint64, args [][]byte)
}

type crash struct{}

func newSim(n int) *sim {
	s := &sim{groups: map[uint64]*memGroup{}, now: time.Unix(1_700_000_000, 0)}
	for g := 0; g < n; g++ {
		s.groups[uint64(g)] = newMemGroup()
	}
	return s
}

func (s *sim) clone() *sim {
	c := newSim(0)
	for g, m := range s.groups {
		c.groups[g] = m.clone()
	}
	c.now = s.now
	return c
}

func (s *sim) Write(_ context.Context, g uint64, args [][]byte) ([]byte, error) {
	if s.onWrite != nil {
		s.onWrite(g, args)
	}
	s.calls++
	s.trace = append(s.trace, fmt.Sprintf("%s@%d", args[0], g))
	if s.crashAt != 0 && s.calls == s.crashAt {
		s.crashed = true
		if s.applied {
			s.groups[g].apply(args)
		}
		panic(crash{})
	}
	return s.groups[g].apply(args), nil
}

func (s *sim) Read(_ context.Context, g uint64, args [][]byte) ([]byte, error) {
	s.reads++
	if s.onRead != nil {
		s.onRead(g, args)
	}
	return s.groups[g].read(args), nil
}

// partitionOf maps keys to partitions by their first letter: a.. -> 0,
// b.. -> 1, and so on.
func partitionOf(k []byte) uint64 {
	if len(k) == 0 {
		return 0
	}
	return uint64(k[0]-'a') % 8
}

func (s *sim) config() Config {
	s.origins++
	return Config{
		Origin:          s.origins,
		Partition:       partitionOf,
		OptimisticReads: s.optimisticReads,
		Heartbeat:       -1,
		Sequential:      true,
		Now:             func() time.Time { return s.now },
		Sleep: func(ctx context.Context, d time.Duration) bool {
			s.now = s.now.Add(d)
			return ctx.Err() == nil
		},
		Go: func(f func()) { f() },
	}
}

// exec runs one transaction to its end or to the crash point; crashed
// reports a crash, else reply is what the client got.
func (s *sim) exec(cmds []command.Cmd, watches []Watch) (reply []byte, crashed bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crash); !ok {
				panic(r)
			}
			crashed = true
		}
	}()
	c := NewCoordinator(s.config(), s)
	reply, err := c.Exec(context.Background(), cmds, watches)
	if err != nil {
		return resp.AppendError(nil, err.Error()), false
	}
	return reply, false
}

// recover runs what the sweepers of every partition leader would: it
// finishes or expires every record and pushes every part, advancing time,
// until no transaction state is left. It fails if that does not happen.
func (s *sim) recover() error {
	s.crashAt = 0
	r := NewResolver(s.config(), s)
	ctx := context.Background()
	for round := 0; round < 10; round++ {
		left := 0
		for _, g := range slices.Sorted(maps.Keys(s.groups)) {
			m := s.groups[g]
			for _, k := range slices.Sorted(maps.Keys(m.tables[TableRecords])) {
				rec, err := decodeRecord(m.tables[TableRecords][k])
				if err != nil {
					return err
				}
				var id ID
				copy(id[:], k)
				r.SweepRecord(ctx, id, g, rec)
			}
			for _, k := range slices.Sorted(maps.Keys(m.tables[TableParts])) {
				pt, err := decodePart(m.tables[TableParts][k])
				if err != nil {
					return err
				}
				r.Push(ctx, g, pt.ref, false)
			}
			for _, t := range m.tables {
				left += len(t)
			}
		}
		if left == 0 {
			return nil
		}
		s.now = s.now.Add(time.Second)
	}
	var rest []string
	for g, m := range s.groups {
		for t, tab := range m.tables {
			for k := range tab {
				rest = append(rest, fmt.Sprintf("group %d table %c key %x", g, t, k))
			}
		}
	}
	sort.Strings(rest)
	return fmt.Errorf("transaction state left after recovery: %s", strings.Join(rest, "; "))
}

// state renders every partition's user data.
func (s *sim) state() string {
	var b strings.Builder
	for _, g := range slices.Sorted(maps.Keys(s.groups)) {
		d := s.groups[g].userData()
		for _, k := range slices.Sorted(maps.Keys(d)) {
			fmt.Fprintf(&b, "%s=%q ", k, strings.TrimPrefix(d[k], "s"))
		}
	}
	return strings.TrimSpace(b.String())
}

func (s *sim) set(kvs ...string) {
	for i := 0; i < len(kvs); i += 2 {
		g := s.groups[partitionOf([]byte(kvs[i]))]
		g.index++
		g.data[kvs[i]] = append(binary.BigEndian.AppendUint64(nil, g.index), "s"+kvs[i+1]...)
	}
}

func cmd(s string) [][]byte {
	var out [][]byte
	for _, f := range strings.Fields(s) {
		out = append(out, []byte(f))
	}
	return out
}

// cmds decodes commands as the edge does.
func cmds(ss ...string) []command.Cmd {
	out := make([]command.Cmd, len(ss))
	for i, s := range ss {
		out[i] = decodeCmd(s)
	}
	return out
}

func decodeCmd(s string) command.Cmd {
	c, err := command.Decode(cmd(s), partitionOf)
	if err != nil {
		panic(fmt.Sprintf("decode %q: %v", s, err))
	}
	return c
}

// shown renders a coordinator's answer on one line.
func shown(reply []byte, err error) string {
	if err != nil {
		return "(error) " + err.Error()
	}
	return show(reply)
}

// show renders a RESP reply on one line.
func show(b []byte) string {
	v, _, err := resp.ParseValue(b)
	if err != nil {
		return fmt.Sprintf("malformed %q", b)
	}
	return showValue(v)
}

func showValue(v resp.Value) string {
	switch v.Kind {
	case '*':
		if v.Null {
			return "(nil array)"
		}
		parts := make([]string, len(v.Array))
		for i, e := range v.Array {
			parts[i] = showValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case '$':
		if v.Null {
			return "(nil)"
		}
		return fmt.Sprintf("%q", v.Str)
	case ':':
		return fmt.Sprint(v.Int)
	case '-':
		return "(error) " + string(v.Str)
	}
	return string(v.Str)
}
