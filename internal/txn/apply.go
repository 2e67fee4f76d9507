package txn

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strconv"

	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// A partition's transaction tables, as Reader, Store and Scan name them.
// The values are the storage engine's table ids (storage.Txn*) and the
// backup files' table tags (backup.Table*), which tables_test.go holds
// equal; txn keeps its own copies so that it links no storage engine.
const (
	TableLocks   byte = 'l' // user key -> lock holders
	TableParts   byte = 'p' // txn id -> this partition's part of a prepared transaction
	TableRecords byte = 'r' // txn id -> transaction record (in the record partition)
)

// Reader is the applied state of one partition as this package reads it.
type Reader interface {
	kv.Reader
	// Version is the log index of the last write to key, 0 if absent.
	Version(key []byte) (uint64, error)
	// Applied is the index of the last log entry applied (in a log
	// entry's apply: that entry's).
	Applied() (uint64, error)
	// TxnGet reads one of the tables above.
	TxnGet(table byte, k []byte) ([]byte, bool, error)
	// NoLocks reports that TableLocks is certainly empty; false when it
	// may not be. It lets a plain command skip the lock table's read.
	NoLocks() bool
}

// Store is one partition's state as a log entry changes it.
type Store interface {
	Reader
	kv.Writer
	TxnPut(table byte, k, v []byte) error
	TxnDel(table byte, k []byte) error
	// Refuse marks the command as not applied (it changed nothing and
	// may be retried with the same identity).
	Refuse()
}

// keyMode is how a command set uses one key.
type keyMode struct {
	key   []byte
	write bool
}

// lookup finds the spec of each command of a share, once: keysOf and
// evaluate then use them. An unknown command's spec is nil.
func lookup(cmds [][][]byte) []*command.Spec {
	specs := make([]*command.Spec, len(cmds))
	for i, c := range cmds {
		if len(c) > 0 {
			specs[i] = command.Lookup(c[0])
		}
	}
	return specs
}

// keysOf lists the distinct keys of cmds (specs their lookups) and
// watches, in first-use order, with write set when any command writes the
// key.
func keysOf(specs []*command.Spec, cmds [][][]byte, watches []Watch) []keyMode {
	var out []keyMode
	idx := map[string]int{}
	add := func(k []byte, write bool) {
		if i, ok := idx[string(k)]; ok {
			out[i].write = out[i].write || write
			return
		}
		idx[string(k)] = len(out)
		out = append(out, keyMode{key: k, write: write})
	}
	for _, w := range watches {
		add(w.Key, false)
	}
	var idxs []int
	for j, args := range cmds {
		c := kv.Of(specs[j])
		if c == nil || !c.CheckArity(args) {
			continue
		}
		idxs = c.AppendKeys(idxs[:0], args)
		for _, i := range idxs {
			add(args[i], c.Writes())
		}
	}
	return out
}

// Owner is a store that knows which keys its partition owns: after a
// split moved some away, a command naming one of them is refused
// (failure.WrongGroup) instead of applied or read in the wrong place.
// Stores that are not Owners own every key.
type Owner interface {
	// Ranged reports whether the partition has a range to check keys
	// against (it was split): if not, it owns every key.
	Ranged() bool
	Owns(key []byte) bool
}

// Foreign reports whether s owns some key of keys not.
func Foreign(s any, keys [][]byte) bool {
	o, ok := s.(Owner)
	if !ok || !o.Ranged() {
		return false
	}
	for _, k := range keys {
		if !o.Owns(k) {
			return true
		}
	}
	return false
}

// ForeignArgs reports whether s does not own some key of the command
// args (spec its lookup).
func ForeignArgs(s any, spec *command.Spec, args [][]byte) bool {
	o, ok := s.(Owner)
	if !ok || spec == nil || !o.Ranged() {
		return false
	}
	for _, i := range spec.AppendKeys(nil, args) {
		if !o.Owns(args[i]) {
			return true
		}
	}
	return false
}

// foreignModes is Foreign over a share's keys: refused whole.
func foreignModes(s Store, keys []keyMode, out []byte) ([]byte, bool) {
	o, ok := s.(Owner)
	if !ok || !o.Ranged() {
		return out, false
	}
	for _, k := range keys {
		if !o.Owns(k.key) {
			s.Refuse()
			return signal(out, failure.WrongGroup), true
		}
	}
	return out, false
}

// lockHolders lists the holders of the locks on keys that stand in the
// way of using them as their modes say (conflicts, for each).
func lockHolders(r Reader, keys []keyMode) ([]Ref, error) {
	var holders []Ref
	for _, k := range keys {
		hs, err := conflicts(r, k, nil)
		if err != nil {
			return nil, err
		}
		holders = append(holders, hs...)
	}
	return holders, nil
}

// conflicts lists the holders of key's lock that stand in the way of id
// using it as mode says: a writer blocks everyone, readers block writers.
func conflicts(r Reader, k keyMode, id *ID) ([]Ref, error) {
	b, ok, err := r.TxnGet(TableLocks, k.key)
	if err != nil || !ok {
		return nil, err
	}
	l, err := decodeLock(b)
	if err != nil {
		return nil, err
	}
	if !k.write && l.Writer != nil && readsIgnoreWriters.Load() {
		return nil, nil // the planted bug (see unsafe.go)
	}
	var out []Ref
	for _, h := range l.Holders() {
		if id != nil && h.ID == *id {
			continue
		}
		if l.Writer != nil || k.write {
			out = append(out, h)
		}
	}
	if id != nil && l.Writer == nil && !k.write && len(l.Readers) >= maxReaders {
		out = append(out, l.Readers...)
	}
	return out, nil
}

// Blocked reports the transactions whose locks a plain data command (spec
// its lookup) meets now: a read waits for a writer, a write waits for
// everyone. It runs for every plain command, so it reads the lock table
// once per key named and builds nothing more when no lock is found.
func Blocked(r Reader, spec *command.Spec, args [][]byte) ([]Ref, error) {
	if spec == nil || !spec.HasKeys() || !spec.CheckArity(args) || r.NoLocks() {
		return nil, nil
	}
	var out []Ref
	write := spec.Is(command.Write)
	var buf [8]int
	for _, i := range spec.AppendKeys(buf[:0], args) {
		hs, err := conflicts(r, keyMode{key: args[i], write: write}, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, hs...)
	}
	return out, nil
}

// Apply evaluates one transaction operation from the log. Errors are
// storage failures; a malformed operation answers an error reply, the same
// on every replica.
func Apply(s Store, args [][]byte, out []byte) ([]byte, error) {
	if len(args) < 2 {
		return signal(out, failure.BadOp), nil
	}
	var id ID
	if len(args[1]) == len(id) {
		copy(id[:], args[1])
	}
	switch string(args[0]) {
	case opPrepare:
		p, err := decodePrepare(args[1])
		if err != nil {
			return signal(out, failure.BadOp), nil
		}
		return applyPrepare(s, &p, out)
	case opExec1:
		d := codec.NewDecoder(args[1])
		watches, cmds := decodeBody(&d)
		if d.Done() != nil {
			return signal(out, failure.BadOp), nil
		}
		return applyExec1(s, watches, cmds, out)
	case opEffects:
		return applyEffects(s, args[1], out)
	case opResolve:
		if len(args) != 3 || len(args[2]) != 1 {
			return signal(out, failure.BadOp), nil
		}
		return applyResolve(s, id, Status(args[2][0]), out)
	case opCommit, opAbort, opHeartbeat, opGC:
		return applyRecordOp(s, id, args, out)
	}
	return signal(out, failure.BadOp), nil
}

// Read serves a read-only operation against applied state.
func Read(r Reader, args [][]byte, out []byte) ([]byte, error) {
	if len(args) != 2 {
		return signal(out, failure.BadOp), nil
	}
	switch string(args[0]) {
	case opRecord:
		b, ok, err := r.TxnGet(TableRecords, args[1])
		if err != nil || !ok {
			return resp.AppendNull(out), err
		}
		return resp.AppendBulk(out, b), nil
	case opVersion:
		// A watch must not see a version a transaction is about to change.
		hs, err := conflicts(r, keyMode{key: args[1]}, nil)
		if err != nil {
			return out, err
		}
		if len(hs) > 0 {
			return LockedReply(out, hs), nil
		}
		v, err := liveVersion(r, args[1])
		return resp.AppendInt(out, int64(v)), err
	case opSnap:
		d := codec.NewDecoder(args[1])
		watches, cmds := decodeBody(&d)
		if d.Done() != nil {
			return signal(out, failure.BadOp), nil
		}
		return readSnap(r, watches, cmds, out)
	}
	return signal(out, failure.BadOp), nil
}

// readSnap serves one partition's share of a read-only transaction without
// taking locks, from one consistent view of the partition (r must not
// change while it runs): the versions of its keys, the replies of its commands and
// the transactions holding write locks on its keys, read at once, as
// [[version...], [reply...], holders]. The replies show the committed
// values under any such lock; they are right only if each holder is found
// undecided (or aborted) after the reads, which the coordinator checks.
// Like PREPARE it answers failure.WatchFailed when a watched key changed.
func readSnap(r Reader, watches []Watch, cmds [][][]byte, out []byte) ([]byte, error) {
	specs := lookup(cmds)
	for i, c := range cmds {
		if cmd := kv.Of(specs[i]); cmd == nil || cmd.Writes() || !cmd.CheckArity(c) {
			return signal(out, failure.BadOp), nil
		}
	}
	keys := keysOf(specs, cmds, watches)
	var holders []Ref
	for _, k := range keys {
		hs, err := conflicts(r, k, nil)
		if err != nil {
			return out, err
		}
		holders = append(holders, hs...)
	}
	if ok, err := watchesHold(r, watches); err != nil || !ok {
		return signal(out, failure.WatchFailed), err
	}
	out = resp.AppendArrayHeader(out, 3)
	out = resp.AppendArrayHeader(out, len(keys))
	for _, k := range keys {
		v, err := liveVersion(r, k.key)
		if err == nil && v == 0 {
			// An absent key has no version of its own: it may be created
			// and deleted again between two reads. The partition's applied
			// index stands in, so that any change there counts.
			v, err = r.Applied()
		}
		if err != nil {
			return out, err
		}
		out = resp.AppendInt(out, int64(v))
	}
	out = resp.AppendArrayHeader(out, len(cmds))
	for i, c := range cmds {
		var err error
		if out, err = kv.Of(specs[i]).Read(r, c, out); err != nil {
			return out, err
		}
	}
	return resp.AppendBulk(out, encodeRefs(holders)), nil
}

// liveVersion is key's version, or 0 when it is absent or has expired by
// r's time: a key that expires after WATCH has changed (as in Redis 6.0.9
// and later), one already expired at WATCH and still absent has not.
func liveVersion(r Reader, key []byte) (uint64, error) {
	v, err := r.Version(key)
	if err != nil || v == 0 {
		return v, err
	}
	stored, ok, err := r.Get(key)
	if err != nil || !ok || kv.Expired(stored, r.NowMS()) {
		return 0, err
	}
	return v, nil
}

// watchesHold reports whether every watched key still has its version.
func watchesHold(r Reader, watches []Watch) (bool, error) {
	for _, w := range watches {
		v, err := liveVersion(r, w.Key)
		if err != nil || v != w.Version {
			return false, err
		}
	}
	return true, nil
}

// evaluate runs cmds (specs their lookups) in order against w and returns
// the RESP array of their replies; a command's error stays in its slot, as
// in Redis.
func evaluate(w kv.Writer, specs []*command.Spec, cmds [][][]byte, out []byte) ([]byte, error) {
	out = resp.AppendArrayHeader(out, len(cmds))
	for i, c := range cmds {
		var err error
		if out, err = kv.Exec(w, specs[i], c, out); err != nil {
			return out, err
		}
	}
	return out, nil
}

// applyExec1 runs a transaction whose keys all live in this partition: it
// is refused while a lock stands in the way, answers a null array when a
// watched key changed, and otherwise applies every command here and now.
func applyExec1(s Store, watches []Watch, cmds [][][]byte, out []byte) ([]byte, error) {
	specs := lookup(cmds)
	keys := keysOf(specs, cmds, watches)
	if out, foreign := foreignModes(s, keys, out); foreign {
		return out, nil
	}
	holders, err := lockHolders(s, keys)
	if err != nil {
		return out, err
	}
	if len(holders) > 0 {
		s.Refuse()
		return LockedReply(out, holders), nil
	}
	if ok, err := watchesHold(s, watches); err != nil || !ok {
		return resp.AppendNullArray(out), err
	}
	return evaluate(s, specs, cmds, out)
}

// applyPrepare locks the keys of a participant's share, checks its watches,
// evaluates its commands without changing user data, and stores the
// outcome as intents. On the record's partition it also creates the
// record, in the same entry. Nothing is written when it answers a conflict
// or a failed watch.
func applyPrepare(s Store, p *prepare, out []byte) ([]byte, error) {
	id := p.ref.ID
	if _, ok, err := s.TxnGet(TableParts, id[:]); err != nil || ok {
		return signal(out, failure.Exists), err
	}
	if p.create != nil {
		if _, ok, err := s.TxnGet(TableRecords, id[:]); err != nil || ok {
			return signal(out, failure.Exists), err
		}
	}
	specs := lookup(p.cmds)
	keys := keysOf(specs, p.cmds, p.watches)
	if out, foreign := foreignModes(s, keys, out); foreign {
		return out, nil
	}
	var holders []Ref
	for _, k := range keys {
		hs, err := conflicts(s, k, &id)
		if err != nil {
			return out, err
		}
		holders = append(holders, hs...)
	}
	if len(holders) > 0 {
		return LockedReply(out, holders), nil
	}
	if ok, err := watchesHold(s, p.watches); err != nil || !ok {
		return signal(out, failure.WatchFailed), err
	}
	ov := newOverlay(s)
	out, err := evaluate(ov, specs, p.cmds, out)
	if err != nil {
		return out, err
	}
	pt := part{ref: p.ref}
	for _, k := range keys {
		pk := partKey{key: k.key, write: k.write, intent: intentNone}
		if w := ov.writes[string(k.key)]; w != nil {
			pk.intent, pk.value = intentPut, w.value
			if w.deleted {
				pk.intent, pk.value = intentDel, nil
			}
		}
		pt.keys = append(pt.keys, pk)
		pt.keys = append(pt.keys, ov.subIntents(k.key)...)
		if err := addHold(s, k, p.ref); err != nil {
			return out, err
		}
	}
	if err := s.TxnPut(TableParts, id[:], pt.encode()); err != nil {
		return out, err
	}
	if p.create != nil {
		rec := *p.create
		rec.Status, rec.Heartbeat = Pending, 0
		if err := s.TxnPut(TableRecords, id[:], rec.encode()); err != nil {
			return out, err
		}
	}
	return out, nil
}

// addHold records ref's hold on k (conflicts were checked).
func addHold(s Store, k keyMode, ref Ref) error {
	var l Lock
	if b, ok, err := s.TxnGet(TableLocks, k.key); err != nil {
		return err
	} else if ok {
		if l, err = decodeLock(b); err != nil {
			return err
		}
	}
	if k.write {
		l = Lock{Writer: &ref}
	} else {
		l.Readers = append(l.Readers, ref)
	}
	return s.TxnPut(TableLocks, k.key, l.encode())
}

// applyResolve ends a part: COMMITTED applies its intents, anything else
// drops them; either way its locks are released. Resolving a part that is
// not here (never prepared, or resolved already) does nothing.
func applyResolve(s Store, id ID, st Status, out []byte) ([]byte, error) {
	b, ok, err := s.TxnGet(TableParts, id[:])
	if err != nil || !ok {
		return resp.AppendSimple(out, "OK"), err
	}
	pt, err := decodePart(b)
	if err != nil {
		return out, err
	}
	if st == Committed {
		if err := applyIntents(s, pt.keys); err != nil {
			return out, err
		}
	}
	for _, k := range pt.keys {
		if k.intent == intentSubPut || k.intent == intentSubDel {
			continue
		}
		if err := releaseHold(s, k.key, id); err != nil {
			return out, err
		}
	}
	if err := s.TxnDel(TableParts, id[:]); err != nil {
		return out, err
	}
	return resp.AppendSimple(out, "OK"), nil
}

func releaseHold(s Store, key []byte, id ID) error {
	b, ok, err := s.TxnGet(TableLocks, key)
	if err != nil || !ok {
		return err
	}
	l, err := decodeLock(b)
	if err != nil {
		return err
	}
	l, left := l.without(id)
	if !left {
		return s.TxnDel(TableLocks, key)
	}
	return s.TxnPut(TableLocks, key, l.encode())
}

// applyRecordOp runs a compare-and-set on a transaction record and answers
// the record's status afterwards.
func applyRecordOp(s Store, id ID, args [][]byte, out []byte) ([]byte, error) {
	b, ok, err := s.TxnGet(TableRecords, id[:])
	if err != nil {
		return out, err
	}
	if !ok {
		if string(args[0]) == opGC {
			return resp.AppendSimple(out, "OK"), nil
		}
		return statusReply(out, Missing), nil
	}
	rec, err := decodeRecord(b)
	if err != nil {
		return out, err
	}
	was := rec
	switch string(args[0]) {
	case opCommit:
		if rec.Status == Pending {
			rec.Status = Committed
		}
	case opAbort:
		if len(args) != 3 {
			return signal(out, failure.BadOp), nil
		}
		hb, perr := strconv.ParseUint(string(args[2]), 10, 64)
		if rec.Status == Pending && (len(args[2]) == 0 || perr == nil && hb == rec.Heartbeat) {
			rec.Status = Aborted
		}
	case opHeartbeat:
		if len(args) != 3 {
			return signal(out, failure.BadOp), nil
		}
		hb, perr := strconv.ParseUint(string(args[2]), 10, 64)
		if perr != nil {
			return signal(out, failure.BadOp), nil
		}
		if rec.Status == Pending && hb > rec.Heartbeat {
			rec.Heartbeat = hb
		}
	case opGC:
		if rec.Status == Pending {
			return statusReply(out, Pending), nil
		}
		if err := s.TxnDel(TableRecords, id[:]); err != nil {
			return out, err
		}
		return resp.AppendSimple(out, "OK"), nil
	}
	if rec.Status != was.Status || rec.Heartbeat != was.Heartbeat {
		if err := s.TxnPut(TableRecords, id[:], rec.encode()); err != nil {
			return out, err
		}
	}
	return statusReply(out, rec.Status), nil
}

// overlay evaluates a participant's commands without touching user data:
// writes are kept aside (they become intents), reads see them. Sub-keys of
// collections are kept per collection, so a scan merges them in order.
type overlay struct {
	base kv.Reader
	vers interface {
		NewVersion(key []byte) (uint64, error)
	}
	writes map[string]*written
	subs   map[string]map[string]*written // collID -> sub -> write
}

type written struct {
	value   []byte
	deleted bool
}

func newOverlay(s Store) *overlay {
	return &overlay{base: s, vers: s, writes: map[string]*written{}, subs: map[string]map[string]*written{}}
}

func (o *overlay) Get(k []byte) ([]byte, bool, error) {
	if w := o.writes[string(k)]; w != nil {
		return w.value, !w.deleted, nil
	}
	return o.base.Get(k)
}

// NowMS is the time of the PREPARE's entry: the intents computed against
// it (an INCR of an expired key starts over) are applied as they are.
func (o *overlay) NowMS() int64 { return o.base.NowMS() }

func (o *overlay) Put(k, v []byte, _ bool) error {
	o.writes[string(k)] = &written{value: bytes.Clone(v)}
	return nil
}

func (o *overlay) Del(k []byte) error {
	o.writes[string(k)] = &written{deleted: true}
	return nil
}

// PutBlind is Put: an intent is applied at resolution, blind.
func (o *overlay) PutBlind(k, v []byte) error { return o.Put(k, v, false) }

// collID names collection (k, ver) among the overlay's sub-key writes:
// the key's length, the key, the version.
func collID(k []byte, ver uint64) string {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(k)))
	return string(binary.BigEndian.AppendUint64(append(b, k...), ver))
}

func splitCollID(id string) (k []byte, ver uint64) {
	n := binary.BigEndian.Uint32([]byte(id[:4]))
	return []byte(id[4 : 4+n]), binary.BigEndian.Uint64([]byte(id[4+n:]))
}

func (o *overlay) GetSub(k []byte, ver uint64, sub []byte) ([]byte, bool, error) {
	if w := o.subs[collID(k, ver)][string(sub)]; w != nil {
		return w.value, !w.deleted, nil
	}
	return o.base.GetSub(k, ver, sub)
}

func (o *overlay) PutSub(k []byte, ver uint64, sub, v []byte) error {
	o.sub(k, ver)[string(sub)] = &written{value: bytes.Clone(v)}
	return nil
}

func (o *overlay) DelSub(k []byte, ver uint64, sub []byte) error {
	o.sub(k, ver)[string(sub)] = &written{deleted: true}
	return nil
}

func (o *overlay) sub(k []byte, ver uint64) map[string]*written {
	id := collID(k, ver)
	m := o.subs[id]
	if m == nil {
		m = map[string]*written{}
		o.subs[id] = m
	}
	return m
}

// NewVersion is past the versions of the sub-keys written here too.
func (o *overlay) NewVersion(k []byte) (uint64, error) {
	v, err := o.vers.NewVersion(k)
	for id := range o.subs {
		if ck, cv := splitCollID(id); bytes.Equal(ck, k) && cv >= v {
			v = cv + 1
		}
	}
	return v, err
}

// ScanSub merges the overlay's sub-key writes of (k, ver) into the base's
// scan, in the scan's order.
func (o *overlay) ScanSub(k []byte, ver uint64, from []byte, reverse bool, fn func(sub, v []byte) bool) error {
	mine := o.subs[collID(k, ver)]
	if len(mine) == 0 {
		return o.base.ScanSub(k, ver, from, reverse, fn)
	}
	ks := make([]string, 0, len(mine))
	for sub := range mine {
		if from == nil || !reverse && sub >= string(from) || reverse && sub <= string(from) {
			ks = append(ks, sub)
		}
	}
	slices.Sort(ks)
	if reverse {
		slices.Reverse(ks)
	}
	before := func(a, b string) bool { return a < b != reverse && a != b }
	i, stop := 0, false
	emit := func(sub string) bool {
		w := mine[sub]
		return w.deleted || fn([]byte(sub), w.value)
	}
	err := o.base.ScanSub(k, ver, from, reverse, func(sub, v []byte) bool {
		for ; i < len(ks) && before(ks[i], string(sub)); i++ {
			if !emit(ks[i]) {
				stop = true
				return false
			}
		}
		if i < len(ks) && ks[i] == string(sub) { // written here: the overlay's stands
			i++
			stop = !emit(string(sub))
			return !stop
		}
		stop = !fn(sub, v)
		return !stop
	})
	for ; err == nil && !stop && i < len(ks); i++ {
		stop = !emit(ks[i])
	}
	return err
}

// subIntents are the sub-key writes of the collections at k, as intents
// following k's own in its part, in a fixed order (every replica encodes
// the same part).
func (o *overlay) subIntents(k []byte) []partKey {
	var ids []string
	for id := range o.subs {
		if ck, _ := splitCollID(id); bytes.Equal(ck, k) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []partKey
	for _, id := range ids {
		_, ver := splitCollID(id)
		subs := make([]string, 0, len(o.subs[id]))
		for sub := range o.subs[id] {
			subs = append(subs, sub)
		}
		slices.Sort(subs)
		for _, sub := range subs {
			w := o.subs[id][sub]
			pk := partKey{key: append(binary.BigEndian.AppendUint64(nil, ver), sub...), intent: intentSubPut, value: w.value}
			if w.deleted {
				pk.intent, pk.value = intentSubDel, nil
			}
			out = append(out, pk)
		}
	}
	return out
}
