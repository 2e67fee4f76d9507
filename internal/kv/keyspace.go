package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/ring"
)

// Keyspace commands over one partition's keys. RENAME and COPY of keys in
// different partitions answer CROSSSLOT (the edge), as in Redis Cluster.
func init() {
	register(command.Keyspace,
		reader("touch", -2, 1, -1, 1, evalExists).merging(command.MergeSum),
		writer("rename", 3, 1, 2, 1, evalRename(false)),
		writer("renamenx", 3, 1, 2, 1, evalRename(true)),
		writer("copy", -3, 1, 2, 1, evalCopy),
	)
}

// MaxMoveElements bounds the elements RENAME and COPY move in one entry:
// a collection's elements are stored under its key, so moving it
// rewrites every one (Redis moves a pointer).
const MaxMoveElements = 100_000

func errTooManyToMove(n uint64) string {
	return fmt.Sprintf("ERR the value has %d elements: RENAME and COPY move at most %d in one step", n, MaxMoveElements)
}

// liveStored reads key's stored value if it is live (a copy).
func liveStored(r Reader, key []byte) ([]byte, bool, error) {
	stored, ok, err := r.Get(key)
	if err != nil || !ok || Expired(stored, r.NowMS()) {
		return nil, false, err
	}
	return bytes.Clone(stored), true, nil
}

// subKeysOf is how many sub-keys a stored value has.
func subKeysOf(stored []byte) uint64 {
	m, ok := decodeMeta(stored)
	switch {
	case !ok:
		return 0
	case m.tag == typeZSet:
		return 2 * m.n
	}
	return m.n
}

// MaxMoveBytes bounds the bytes of elements RENAME and COPY move in one
// entry (as a command's arguments are bounded), read before anything is
// written.
const MaxMoveBytes = 64 << 20

// readMove reads the sub-keys of the collection stored at src (none for a
// string) for a RENAME or COPY, or answers Redis-style why it cannot move
// them in one step.
func readMove(w Writer, src, stored []byte) (subs [][2][]byte, msg string, err error) {
	if n := subKeysOf(stored); n > MaxMoveElements {
		return nil, errTooManyToMove(n), nil
	}
	m, isColl := decodeMeta(stored)
	if !isColl {
		return nil, "", nil
	}
	size := 0
	err = w.ScanSub(src, m.ver, nil, false, func(sub, v []byte) bool {
		size += len(sub) + len(v)
		subs = append(subs, [2][]byte{bytes.Clone(sub), bytes.Clone(v)})
		return size <= MaxMoveBytes
	})
	if err == nil && size > MaxMoveBytes {
		return nil, fmt.Sprintf("ERR the value is over %d MiB: RENAME and COPY move at most that in one step", MaxMoveBytes>>20), nil
	}
	return subs, "", err
}

// putCopy stores at dst (replacing whatever is there) a copy of the
// value stored, with the sub-keys readMove read.
func putCopy(w Writer, dst, stored []byte, subs [][2][]byte) error {
	m, isColl := decodeMeta(stored)
	old, present, err := w.Get(dst)
	if err != nil {
		return err
	}
	if present {
		if err := dropStored(w, dst, old); err != nil {
			return err
		}
	}
	if isColl {
		ver, err := w.NewVersion(dst)
		if err != nil {
			return err
		}
		for _, s := range subs {
			if err := w.PutSub(dst, ver, s[0], s[1]); err != nil {
				return err
			}
		}
		m.ver = ver
		stored = m.encode()
	}
	return w.Put(dst, stored, true)
}

func evalRename(nx bool) writeFunc {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		src, dst := args[1], args[2]
		stored, ok, err := liveStored(w, src)
		switch {
		case err != nil:
			return out, err
		case !ok:
			return appendErr(out, "ERR no such key"), nil
		case bytes.Equal(src, dst) && nx:
			return resp.AppendInt(out, 0), nil
		case bytes.Equal(src, dst):
			return resp.AppendSimple(out, "OK"), nil
		}
		subs, msg, err := readMove(w, src, stored)
		if err != nil || msg != "" {
			return appendErr(out, msg), err
		}
		if nx {
			if _, exists, err := liveStored(w, dst); err != nil || exists {
				return resp.AppendInt(out, 0), err
			}
		}
		if err := putCopy(w, dst, stored, subs); err != nil {
			return out, err
		}
		if err := delKey(w, src); err != nil {
			return out, err
		}
		if nx {
			return resp.AppendInt(out, 1), nil
		}
		return resp.AppendSimple(out, "OK"), nil
	}
}

func evalCopy(w Writer, args [][]byte, out []byte) ([]byte, error) {
	replace := false
	for i := 3; i < len(args); i++ {
		switch {
		case equalFold(args[i], "replace"):
			replace = true
		case equalFold(args[i], "db") && i+1 < len(args):
			n, ok := ParseInt(args[i+1])
			if !ok {
				return appendErr(out, ErrNotInteger), nil
			}
			if n != 0 { // one database, as in Redis Cluster, and its words
				return appendErr(out, "ERR Copying to another database is not allowed in cluster mode"), nil
			}
			i++
		default:
			return appendErr(out, ErrSyntax), nil
		}
	}
	src, dst := args[1], args[2]
	if bytes.Equal(src, dst) {
		return appendErr(out, "ERR source and destination objects are the same"), nil
	}
	stored, ok, err := liveStored(w, src)
	if err != nil || !ok {
		return resp.AppendInt(out, 0), err
	}
	if _, exists, err := liveStored(w, dst); err != nil || exists && !replace {
		return resp.AppendInt(out, 0), err
	}
	subs, msg, err := readMove(w, src, stored)
	if err != nil || msg != "" {
		return appendErr(out, msg), err
	}
	return resp.AppendInt(out, 1), putCopy(w, dst, stored, subs)
}

// KeyScanner is a Reader that lists its partition's keys in order, from
// the first at or after from (nil: the first), with their stored values,
// until fn returns false (KEYS, RANDOMKEY). A node's data reader is one;
// the slices are valid only during the call.
type KeyScanner interface {
	ScanKeys(from []byte, fn func(key, stored []byte) bool) error
}

// Internal reads the edge fans out to every partition for KEYS and
// RANDOMKEY; no client may send them.
const (
	OpKeys      = "kintsu.keys"      // PATTERN -> the partition's live keys matching it
	OpRandomKey = "kintsu.randomkey" // -> one of the partition's live keys, or nil
	// OpScan is one step of SCAN in a partition: "kintsu.scan AFTER
	// COUNT PATTERN TYPE" looks at up to COUNT keys after AFTER (""
	// from the first) and answers [last key looked at, or "" when the
	// partition is done; [matching live keys...]]. PATTERN "" matches
	// every key, TYPE "" every type; "... LO HI" answers only keys of
	// slots LO to HI (ScanSlotsArgs).
	OpScan = "kintsu.scan"
	// OpMemUsage is MEMORY USAGE KEY's read: an estimate of the bytes
	// the key takes, or null.
	OpMemUsage = "kintsu.memusage"
	// OpEncoding is OBJECT ENCODING KEY's read: Redis's name for the
	// encoding Redis would use for the value, or null.
	OpEncoding = "kintsu.encoding"
)

// MaxScanCount bounds the keys one SCAN step looks at.
const MaxScanCount = 100000

func init() {
	for _, c := range []*Command{reader(OpKeys, 2, 0, 0, 0, evalKeys), reader(OpRandomKey, 1, 0, 0, 0, evalRandomKey), reader(OpScan, -5, 0, 0, 0, evalScan), reader(OpMemUsage, 2, 1, 1, 1, evalMemUsage), reader(OpEncoding, 2, 1, 1, 1, evalEncoding)} {
		c.Flags |= command.Internal
		register(command.CatInternal, c)
	}
}

const errNoKeyScan = "ERR this node cannot list keys here"

// MaxKeysReply bounds KEYS's answer (per partition here, and in all at
// the edge); the scan itself is not bounded, as in Redis.
const MaxKeysReply = 64 << 20

const errKeysTooMany = "ERR KEYS would answer more than 64 MiB of keys; match fewer"

func evalKeys(r Reader, args [][]byte, out []byte) ([]byte, error) {
	ks, ok := r.(KeyScanner)
	if !ok {
		return appendErr(out, errNoKeyScan), nil
	}
	now, all := r.NowMS(), len(args[1]) == 1 && args[1][0] == '*'
	var body []byte
	n := 0
	err := ks.ScanKeys(nil, func(k, stored []byte) bool {
		if !Expired(stored, now) && (all || Match(args[1], k)) {
			body = resp.AppendBulk(body, k)
			n++
		}
		return len(body) <= MaxKeysReply
	})
	if err != nil {
		return out, err
	}
	if len(body) > MaxKeysReply {
		return appendErr(out, errKeysTooMany), nil
	}
	return append(resp.AppendArrayHeader(out, n), body...), nil
}

// evalRandomKey answers the first live key at or after a random point of
// the key space, wrapping around: not exactly uniform (keys after a wide
// gap are likelier), as Redis's is not either.
func evalRandomKey(r Reader, args [][]byte, out []byte) ([]byte, error) {
	ks, ok := r.(KeyScanner)
	if !ok {
		return appendErr(out, errNoKeyScan), nil
	}
	m := seedOf(r, nil)
	now := r.NowMS()
	var found []byte
	pick := func(k, stored []byte) bool {
		if Expired(stored, now) {
			return true
		}
		found = bytes.Clone(k)
		return false
	}
	from := binary.BigEndian.AppendUint32(nil, uint32(m.next()))
	if err := ks.ScanKeys(from, pick); err != nil {
		return out, err
	}
	if found == nil {
		if err := ks.ScanKeys(nil, pick); err != nil {
			return out, err
		}
	}
	if found == nil {
		return resp.AppendNull(out), nil
	}
	return resp.AppendBulk(out, found), nil
}

// ScanArgs is the OpScan step after key after (nil: from the first).
func ScanArgs(after []byte, count int, pattern, typ []byte) [][]byte {
	return [][]byte{[]byte(OpScan), after, []byte(strconv.Itoa(count)), pattern, typ}
}

// SlotOwner is a store that can say whether a range of slots is all its
// own (a partition's range after splits and merges).
type SlotOwner interface {
	OwnsSlots(lo, hi uint16) bool
}

// ScanSlotsArgs is the OpScan step that answers only keys of slots lo to
// hi: a walk over a range that is now part of a larger partition (a
// merge), or of which only a part is still in this one (a split).
func ScanSlotsArgs(after []byte, count int, pattern, typ []byte, lo, hi uint16) [][]byte {
	return append(ScanArgs(after, count, pattern, typ), []byte(strconv.Itoa(int(lo))), []byte(strconv.Itoa(int(hi))))
}

func evalScan(r Reader, args [][]byte, out []byte) ([]byte, error) {
	ks, ok := r.(KeyScanner)
	if !ok {
		return appendErr(out, errNoKeyScan), nil
	}
	count, err := strconv.Atoi(string(args[2]))
	if err != nil || count < 1 || count > MaxScanCount {
		return appendErr(out, ErrSyntax), nil
	}
	var from []byte
	if len(args[1]) > 0 {
		from = append(bytes.Clone(args[1]), 0) // the first key after it
	}
	pattern, typ, now := args[3], string(args[4]), r.NowMS()
	lo, hi := 0, ring.SlotCount-1
	switch len(args) {
	case 5:
	case 7:
		var err1, err2 error
		lo, err1 = strconv.Atoi(string(args[5]))
		hi, err2 = strconv.Atoi(string(args[6]))
		if err1 != nil || err2 != nil || lo < 0 || hi >= ring.SlotCount || lo > hi {
			return appendErr(out, ErrSyntax), nil
		}
	default:
		return appendErr(out, ErrSyntax), nil
	}
	if o, ok := r.(SlotOwner); ok && len(args) == 7 && !o.OwnsSlots(uint16(lo), uint16(hi)) {
		// A split or merge moved some of these slots away: the walk asks
		// their partition by a fresh map (edge/scan.go).
		return failure.AppendSignal(out, failure.WrongGroup, nil), nil
	}
	inRange := func(k []byte) bool {
		if lo == 0 && hi == ring.SlotCount-1 {
			return true
		}
		s := int(ring.Slot(k))
		return s >= lo && s <= hi
	}
	var body, last []byte
	n, seen, done := 0, 0, true
	err = ks.ScanKeys(from, func(k, stored []byte) bool {
		if seen == count {
			done = false
			return false
		}
		seen++
		last = append(last[:0], k...)
		if !inRange(k) || Expired(stored, now) || len(pattern) > 0 && !Match(pattern, k) || typ != "" && typeName(stored) != typ {
			return true
		}
		body = resp.AppendBulk(body, k)
		n++
		return len(body) <= MaxKeysReply
	})
	if err != nil {
		return out, err
	}
	if len(body) > MaxKeysReply {
		return appendErr(out, errKeysTooMany), nil
	}
	if done {
		last = nil
	}
	out = resp.AppendArrayHeader(out, 2)
	out = resp.AppendBulk(out, last)
	return append(resp.AppendArrayHeader(out, n), body...), nil
}

// memSamples is how many elements MEMORY USAGE looks at in a collection,
// as Redis's default SAMPLES.
const memSamples = 5

// evalMemUsage estimates the bytes a key takes in storage: its record
// with the key, and for a collection its sub-keys, averaged over the
// first few and multiplied out, as Redis samples. Encodings differ from
// Redis's: the figure is Kintsu's own.
func evalMemUsage(r Reader, args [][]byte, out []byte) ([]byte, error) {
	stored, ok, err := r.Get(args[1])
	if err != nil || !ok || Expired(stored, r.NowMS()) {
		return resp.AppendNull(out), err
	}
	n := int64(len(args[1]) + len(stored))
	if m, ok := decodeMeta(stored); ok {
		var sampled, bytes int64
		err := r.ScanSub(args[1], m.ver, nil, false, func(sub, v []byte) bool {
			sampled++
			bytes += int64(len(args[1]) + 8 + len(sub) + len(v))
			return sampled < memSamples
		})
		if err != nil {
			return out, err
		}
		if sampled > 0 {
			subs := int64(m.n)
			if m.tag == typeZSet {
				subs *= 2 // a member's two sub-keys
			}
			n += bytes * subs / sampled
		}
	}
	return resp.AppendInt(out, n), nil
}

// evalEncoding answers OBJECT ENCODING with the name of the encoding
// Redis 7.0 would give the value under its default thresholds, for tools
// that branch on it: Kintsu stores every value its own way.
func evalEncoding(r Reader, args [][]byte, out []byte) ([]byte, error) {
	stored, ok, err := r.Get(args[1])
	if err != nil || !ok || Expired(stored, r.NowMS()) {
		return resp.AppendNull(out), err
	}
	if m, ok := decodeMeta(stored); ok {
		small := m.n <= 128
		name := map[byte][2]string{
			typeHash: {"hashtable", "listpack"},
			typeList: {"quicklist", "listpack"},
			typeSet:  {"hashtable", "listpack"},
			typeZSet: {"skiplist", "listpack"},
		}[m.tag]
		if small {
			return resp.AppendBulkString(out, name[1]), nil
		}
		return resp.AppendBulkString(out, name[0]), nil
	}
	v, _, _ := decodeString(stored)
	if _, ok := ParseInt(v); ok && len(v) <= 20 {
		return resp.AppendBulkString(out, "int"), nil
	}
	if len(v) <= 44 {
		return resp.AppendBulkString(out, "embstr"), nil
	}
	return resp.AppendBulkString(out, "raw"), nil
}
