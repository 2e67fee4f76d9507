package edge

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/script"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/txn"
)

// Fakes of what the edge hands commands to, for the interaction tests
// (interaction_test.go). They answer like a one-node store, so replies read
// as Redis's, record every call, and can be told to fail the next call of a
// partition or of the transaction coordinator with one of the typed errors
// the edge must word.

// fakeNow is the store's clock: fixed, so TTLs in scripts never drift.
const fakeNow = 1_700_000_000_000

// call is one request the edge made of a fake.
type call struct {
	txn   bool   // made of Transactions, not of the Router
	group uint64 // the Router's partition
	text  string
}

// callLog records the calls in the order the fakes received them.
type callLog struct {
	mu    sync.Mutex
	calls []call
}

func (l *callLog) add(c call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, c)
}

// take returns the calls since the last take, in a deterministic order.
// Lanes of different partitions run concurrently and the edge promises no
// order between them, so each run of Router calls between two transaction
// calls is sorted by partition; the sort is stable, so a partition's calls
// keep the order they came in, which the edge does promise. Transaction
// calls never overlap Router calls of the same connection, so they stay in
// place.
func (l *callLog) take() []string {
	l.mu.Lock()
	calls := l.calls
	l.calls = nil
	l.mu.Unlock()
	for i := 0; i < len(calls); {
		j := i
		for j < len(calls) && !calls[j].txn {
			j++
		}
		slices.SortStableFunc(calls[i:j], func(a, b call) int { return int(a.group) - int(b.group) })
		i = j + 1
	}
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.text
	}
	return out
}

// fmtArgs shows a command as a script writes it; arguments that would not
// survive splitting on spaces are quoted.
func fmtArgs(args [][]byte) string {
	parts := make([]string, len(args))
	for i, a := range args {
		s := string(a)
		if s == "" || strings.ContainsAny(s, " \"\t\r\n") || !strconv.CanBackquote(s) {
			s = strconv.Quote(s)
		}
		parts[i] = s
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// fmtCmds shows a lane's commands; a run of one command repeated is shown
// once with its count, so long pipelines stay readable.
func fmtCmds(cmds [][][]byte) string {
	var b strings.Builder
	for i := 0; i < len(cmds); {
		s := fmtArgs(cmds[i])
		j := i + 1
		for j < len(cmds) && fmtArgs(cmds[j]) == s {
			j++
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
		if j-i > 1 {
			fmt.Fprintf(&b, " x%d", j-i)
		}
		i = j
	}
	return b.String()
}

// fakeStore is every partition's data in one map: the edge never sees
// where a key is stored, only which partition it sent the command to.
type fakeStore struct {
	mu         sync.Mutex
	partitions int
	data       map[string][]byte
	versions   map[string]uint64 // bumped by every write of the key, for WATCH
	kv.MemSubs
	// oldScan: answer the scan's slot form as a build before it does
	// (wrong number of arguments).
	oldScan bool
}

func newFakeStore(partitions int) *fakeStore {
	return &fakeStore{partitions: partitions, data: map[string][]byte{}, versions: map[string]uint64{}}
}

// kv.Writer, called with mu held.
func (s *fakeStore) Get(key []byte) ([]byte, bool, error) {
	v, ok := s.data[string(key)]
	return v, ok, nil
}
func (s *fakeStore) NowMS() int64 { return fakeNow }
func (s *fakeStore) NewVersion(k []byte) (uint64, error) {
	return s.VersionAt(k, 1), nil
}
func (s *fakeStore) Put(key, stored []byte, _ bool) error {
	s.data[string(key)] = slices.Clone(stored)
	return nil
}
func (s *fakeStore) Del(key []byte) error {
	return s.del(key)
}
func (s *fakeStore) PutBlind(key, stored []byte) error { return s.Put(key, stored, false) }
func (s *fakeStore) del(key []byte) error {
	delete(s.data, string(key))
	return nil
}

// groupKeys is one partition's keys of the store, for a scan.
type groupKeys struct {
	*fakeStore
	group uint64
}

func (g groupKeys) ScanKeys(from []byte, fn func(key, stored []byte) bool) error {
	var keys []string
	for k := range g.data {
		if ring.PartitionOf(ring.Slot([]byte(k)), g.partitions) == int(g.group) && k >= string(from) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !fn([]byte(k), g.data[k]) {
			break
		}
	}
	return nil
}

// versionOp is the internal read WATCH makes of a key's version.
var versionOp = string(txn.VersionArgs(nil)[0])

func (s *fakeStore) version(key []byte) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.versions[string(key)]
}

// exec answers one command sent to group as a partition would, including
// the internal reads the edge makes (key versions, key counts).
func (s *fakeStore) exec(group uint64, args [][]byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch name := strings.ToLower(string(args[0])); {
	case name == statemachine.OpKeyCount:
		n := 0
		for k := range s.data {
			if ring.PartitionOf(ring.Slot([]byte(k)), s.partitions) == int(group) {
				n++
			}
		}
		return resp.AppendInt(nil, int64(n))
	case name == versionOp && len(args) == 2:
		return resp.AppendInt(nil, int64(s.versions[string(args[1])]))
	case group == statemachine.MetaGroup && (strings.HasPrefix(name, "kintsu.acl.") || strings.HasPrefix(name, "kintsu.function.") || name == statemachine.CmdConfigSet):
		apply := statemachine.ApplyACL
		if strings.HasPrefix(name, "kintsu.function.") {
			apply = statemachine.ApplyFunctions
		} else if name == statemachine.CmdConfigSet {
			apply = statemachine.ApplyConfig
		}
		out, err := apply(s, args, nil)
		if err != nil {
			return resp.AppendError(nil, "ERR fake store: "+err.Error())
		}
		return out
	}
	spec := command.Lookup(args[0])
	var w kv.Writer = s
	if string(args[0]) == kv.OpScan && s.oldScan && len(args) != 5 {
		return resp.AppendError(nil, "ERR wrong number of arguments for '"+kv.OpScan+"' command")
	}
	if string(args[0]) == kv.OpScan {
		w = groupKeys{s, group}
	}
	out, err := kv.Exec(w, spec, args, nil)
	if err != nil {
		return resp.AppendError(nil, "ERR fake store: "+err.Error())
	}
	if spec != nil && spec.Is(command.Write) {
		for _, i := range spec.AppendKeys(nil, args) {
			s.versions[string(args[i])]++
		}
	}
	return out
}

// fault is one answer a fake was told to give instead of serving. A
// command answered with a fault is not applied to the store, whatever the
// error says.
type fault struct {
	name  string // see faultErr
	only  int    // the one command of the call it hits; -1: all of them
	group uint64 // for the transaction errors that name a partition
	cause string // for aborted: the participant's failure
}

// answer is what a fake answers one command: a reply or an error.
type answer struct {
	reply []byte
	err   error
}

// faultAnswer makes the typed error (or signal reply) a fault names. read
// says the failed call was a read, as the real Router reports it.
func faultAnswer(name string, group uint64, read bool, cause string) (answer, bool) {
	fail := func(err error) (answer, bool) { return answer{err: err}, true }
	switch name {
	case "noleader":
		return fail(&failure.NoLeaderError{Group: group, Read: read})
	case "busy":
		return fail(&failure.BusyError{})
	case "locked":
		return fail(&failure.LockedError{Read: read})
	case "uncertain":
		return fail(&failure.UncertainError{Group: group, Reason: "deadline exceeded"})
	case "engine":
		return fail(&failure.EngineError{Msg: "engine stopped"})
	case "loading":
		return fail(failure.Loading.Err())
	case "gaveup":
		return fail(&txn.GaveUpError{Attempts: 50})
	case "aborted":
		var c error
		if cause != "" {
			a, ok := faultAnswer(cause, group, read, "")
			if !ok || a.err == nil {
				return answer{}, false
			}
			c = fmt.Errorf("%w: %w", txn.ErrNotApplied, a.err)
		}
		return fail(&txn.AbortedError{Group: group, Cause: c})
	case "undecided":
		return fail(&txn.DecisionUnknownError{Group: group})
	case "internal":
		return fail(&txn.InternalError{Msg: "malformed reply"})
	}
	if sig, ok := strings.CutPrefix(name, "signal-"); ok {
		for s, n := range signalNames {
			if n == sig {
				return answer{reply: failure.AppendSignal(nil, s, []byte("body"))}, true
			}
		}
	}
	return answer{}, false
}

var signalNames = map[failure.Signal]string{
	failure.Locked: "locked", failure.Blocked: "blocked", failure.WatchFailed: "watchfailed",
	failure.BadOp: "badop", failure.Exists: "exists", failure.Loading: "loading",
}

// gateTimeout bounds how long a gated lane waits for the lane it waits
// for: long enough for any scheduler, short enough to fail a script fast.
const gateTimeout = 2 * time.Second

// fakeRouter serves lanes from the store and records them.
type fakeRouter struct {
	log   *callLog
	store *fakeStore

	mu     sync.Mutex
	faults map[uint64][]fault
	// gates[g] = h: the next call of g waits until h has been called; seen
	// is closed when its partition is called.
	gates map[uint64]uint64
	seen  map[uint64]chan struct{}
}

func newFakeRouter(log *callLog, store *fakeStore) *fakeRouter {
	return &fakeRouter{log: log, store: store, faults: map[uint64][]fault{}, gates: map[uint64]uint64{}, seen: map[uint64]chan struct{}{}}
}

func (r *fakeRouter) fail(group uint64, f fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults[group] = append(r.faults[group], f)
}

func (r *fakeRouter) gate(group, after uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gates[group] = after
	r.seen[after] = make(chan struct{})
}

// serve is every Router call: record it, let a gate hold it, then answer
// each command from the store or with the next fault of the partition.
func (r *fakeRouter) serve(kind string, group uint64, cmds [][][]byte, read bool) ([][]byte, []error) {
	r.log.add(call{group: group, text: fmt.Sprintf("%s g%d %s", kind, group, fmtCmds(cmds))})
	r.mu.Lock()
	if ch, ok := r.seen[group]; ok {
		close(ch)
		delete(r.seen, group)
	}
	var wait chan struct{}
	after, gated := r.gates[group]
	if gated {
		delete(r.gates, group)
		wait = r.seen[after]
	}
	var ft *fault
	if q := r.faults[group]; len(q) > 0 {
		ft = &q[0]
		r.faults[group] = q[1:]
	}
	r.mu.Unlock()
	replies := make([][]byte, len(cmds))
	errs := make([]error, len(cmds))
	if wait != nil {
		select {
		case <-wait:
		case <-time.After(gateTimeout):
			for i := range errs {
				errs[i] = &failure.EngineError{Msg: fmt.Sprintf("fake: g%d waited for g%d, which was not called", group, after)}
			}
			return replies, errs
		}
	}
	for i, args := range cmds {
		if ft != nil && (ft.only < 0 || ft.only == i) {
			a, _ := faultAnswer(ft.name, group, read, ft.cause)
			replies[i], errs[i] = a.reply, a.err
			continue
		}
		replies[i] = r.store.exec(group, args)
	}
	return replies, errs
}

func (r *fakeRouter) WriteMany(_ context.Context, group uint64, cmds [][][]byte) ([][]byte, []error) {
	return r.serve("write", group, cmds, false)
}

func (r *fakeRouter) ReadMany(_ context.Context, group uint64, cmds [][][]byte) ([][]byte, []error) {
	return r.serve("read", group, cmds, true)
}

func (r *fakeRouter) StaleReads(_ context.Context, group uint64, cmds [][][]byte) ([][]byte, []error) {
	return r.serve("stale", group, cmds, true)
}

func (r *fakeRouter) Read(_ context.Context, group uint64, args [][]byte) ([]byte, error) {
	replies, errs := r.serve("read1", group, [][][]byte{args}, true)
	return replies[0], errs[0]
}

// fakeTxns runs transactions on the store, all at once, and records them.
type fakeTxns struct {
	log   *callLog
	store *fakeStore

	mu     sync.Mutex
	faults []fault
}

func (x *fakeTxns) fail(f fault) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.faults = append(x.faults, f)
}

func (x *fakeTxns) nextFault() (answer, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.faults) == 0 {
		return answer{}, false
	}
	f := x.faults[0]
	x.faults = x.faults[1:]
	return faultAnswer(f.name, f.group, false, f.cause)
}

func (x *fakeTxns) Exec(_ context.Context, cmds []command.Cmd, watches []txn.Watch) ([]byte, error) {
	args := make([][][]byte, len(cmds))
	for i, c := range cmds {
		args[i] = c.Args
	}
	text := "txn exec " + fmtCmds(args)
	if len(cmds) == 0 {
		text = "txn exec (no commands)"
	}
	if len(watches) > 0 {
		text += " watch"
	}
	for _, w := range watches {
		text += fmt.Sprintf(" %s@%d", w.Key, w.Version)
	}
	x.log.add(call{txn: true, text: text})
	if a, ok := x.nextFault(); ok {
		return a.reply, a.err
	}
	for _, w := range watches {
		if x.store.version(w.Key) != w.Version {
			return resp.AppendNullArray(nil), nil
		}
	}
	out := resp.AppendArrayHeader(nil, len(cmds))
	for _, c := range cmds {
		out = append(out, x.store.exec(c.Group, c.Args)...)
	}
	return out, nil
}

// Script logs the steps and answers RAN for each script; a transaction's
// data commands run as Exec runs them.
func (x *fakeTxns) Script(_ context.Context, group uint64, run [][]byte) ([]byte, error) {
	p, steps, err := script.Decode(run)
	if err != nil {
		return nil, err
	}
	text := fmt.Sprintf("txn script g%d", group)
	if p.Float {
		text += " float"
	}
	for _, s := range steps {
		if s.Cmd != nil {
			text += " " + fmtCmds([][][]byte{s.Cmd})
		} else if s.Function != "" {
			text += fmt.Sprintf(" {fcall %s ro %v keys %q argv %q}", s.Function, s.ReadOnly, s.Keys, s.Argv)
		} else {
			text += fmt.Sprintf(" {%s keys %q argv %q}", s.Body, s.Keys, s.Argv)
		}
	}
	for _, w := range p.Watches {
		text += fmt.Sprintf(" watch %s@%d", w.Key, w.Version)
	}
	x.log.add(call{txn: true, text: text})
	if a, ok := x.nextFault(); ok {
		return a.reply, a.err
	}
	if !p.Multi {
		return resp.AppendSimple(nil, "RAN"), nil
	}
	for _, w := range p.Watches {
		if x.store.version(w.Key) != w.Version {
			return resp.AppendNullArray(nil), nil
		}
	}
	out := resp.AppendArrayHeader(nil, len(steps))
	for _, s := range steps {
		if s.Cmd != nil {
			out = append(out, x.store.exec(group, s.Cmd)...)
		} else {
			out = resp.AppendSimple(out, "RAN")
		}
	}
	return out, nil
}

func (x *fakeTxns) Run(_ context.Context, c command.Cmd) ([]byte, error) {
	x.log.add(call{txn: true, text: "txn run " + fmtCmds([][][]byte{c.Args})})
	if a, ok := x.nextFault(); ok {
		return a.reply, a.err
	}
	return x.store.exec(c.Group, c.Args), nil
}

// fakeView is a cluster of three nodes; this node is node 1. Each
// partition is held by all three, its preferred leader leading, until a
// script says otherwise.
type fakeView struct {
	mu         sync.Mutex
	self       uint64
	partitions int
	nodes      []api.NodeRecord
	leaders    map[uint64]uint64
	groups     map[uint64][]uint64
	away       map[uint64]bool
	belowLevel bool // the cluster's level is 0 (ClusterLevel)
}

func newFakeView(self uint64, partitions int) *fakeView {
	v := &fakeView{self: self, partitions: partitions, leaders: map[uint64]uint64{}, groups: map[uint64][]uint64{}}
	for id := uint64(1); id <= 3; id++ {
		v.nodes = append(v.nodes, api.NodeRecord{
			ID: id, State: api.NodeUp,
			RESPAddr: fmt.Sprintf("10.0.0.%d:700%d", id, id),
			PeerAddr: fmt.Sprintf("10.0.0.%d:800%d", id, id),
		})
	}
	for g := range uint64(partitions) {
		nodes := []uint64{1, 2, 3}
		// Rotate, so preferred leaders are spread as placement spreads them.
		nodes = append(nodes[g%3:], nodes[:g%3]...)
		v.groups[g] = nodes
		v.leaders[g] = nodes[0]
	}
	return v
}

func (v *fakeView) Partitions() []api.PartitionRecord {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]api.PartitionRecord, v.partitions)
	for i := range out {
		start, end := ring.SlotRange(i, v.partitions)
		out[i] = api.PartitionRecord{ID: i, SlotStart: start, SlotEnd: end, Replicas: slices.Clone(v.groups[uint64(i)])}
	}
	return out
}

func (v *fakeView) RefreshMap(context.Context, time.Time) {}

// Slots is the table of Partitions' ranges, as a node's map builds it.
func (v *fakeView) Slots() *ring.SlotTable {
	parts := v.Partitions()
	rs := make([]ring.SlotRangeOwner, len(parts))
	for i, p := range parts {
		rs[i] = ring.SlotRangeOwner{Start: p.SlotStart, End: p.SlotEnd, Group: uint64(p.ID)}
	}
	t, err := ring.NewSlotTable(0, rs)
	if err != nil {
		return nil
	}
	return t
}

func (v *fakeView) NodeRecords() []api.NodeRecord {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.nodes)
}

func (v *fakeView) LeaderOf(group uint64) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.leaders[group]
}

func (v *fakeView) GroupNodes(group uint64) []uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.groups[group])
}

func (v *fakeView) setAway(node uint64, away bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.away == nil {
		v.away = map[uint64]bool{}
	}
	v.away[node] = away
}

func (v *fakeView) Away(node uint64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.away[node]
}

// ClusterLevel is this build's level, unless the test set belowLevel.
func (v *fakeView) ClusterLevel() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.belowLevel {
		return 0
	}
	return api.Level
}

func (v *fakeView) HasReplica(group uint64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Contains(v.groups[group], v.self)
}

func (v *fakeView) Replicas() (local, leading int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for g, nodes := range v.groups {
		if slices.Contains(nodes, v.self) {
			local++
		}
		if v.leaders[g] == v.self {
			leading++
		}
	}
	return local, leading
}

// setNode adds node id or changes its record; empty fields stay as they are.
func (v *fakeView) setNode(id uint64, respAddr, peerAddr, state string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	i := slices.IndexFunc(v.nodes, func(r api.NodeRecord) bool { return r.ID == id })
	if i < 0 {
		v.nodes = append(v.nodes, api.NodeRecord{ID: id, State: api.NodeUp})
		slices.SortFunc(v.nodes, func(a, b api.NodeRecord) int { return int(a.ID) - int(b.ID) })
		i = slices.IndexFunc(v.nodes, func(r api.NodeRecord) bool { return r.ID == id })
	}
	r := &v.nodes[i]
	if respAddr != "" {
		r.RESPAddr = respAddr
	}
	if peerAddr != "" {
		r.PeerAddr = peerAddr
	}
	if state != "" {
		r.State = state
	}
}

func (v *fakeView) setLeader(group, node uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.leaders[group] = node
}

func (v *fakeView) setGroup(group uint64, nodes []uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.groups[group] = nodes
}

// String shows the view as a script's reader needs it.
func (v *fakeView) String() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var b strings.Builder
	for _, r := range v.nodes {
		self := ""
		if r.ID == v.self {
			self = " (self)"
		}
		fmt.Fprintf(&b, "node %d resp=%s peer=%s %s%s\n", r.ID, r.RESPAddr, r.PeerAddr, r.State, self)
	}
	for g := range uint64(v.partitions) {
		start, end := ring.SlotRange(int(g), v.partitions)
		fmt.Fprintf(&b, "g%d slots %d-%d nodes %v leader %d\n", g, start, end, v.groups[g], v.leaders[g])
	}
	return b.String()
}
