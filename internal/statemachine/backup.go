package statemachine

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/kintsu/kintsu/internal/backup"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// Internal commands of data partitions; clients cannot send them (the
// front end only routes kv commands).
const (
	OpCut          = "kintsu.cut"           // ID LEASE-MS -> :index, or [index, lo, hi] once split
	OpUncut        = "kintsu.uncut"         // ID
	OpRestoreBegin = "kintsu.restore.begin" // ID
	OpRestoreLoad  = "kintsu.restore.load"  // ID CHUNK
	OpRestoreEnd   = "kintsu.restore.end"   // ID KEYS
)

func isBackupOp(spec *command.Spec) bool {
	_, ok := spec.Impl.(backupOp)
	return ok
}

// TableRestoreMark is the transaction table (storage.RestoreMark) that
// holds a partition's restore mark; a test keeps the two equal.
const TableRestoreMark byte = 'x'

// restoreMark is the state of a restore in a partition: the backup's id,
// the next chunk expected, and the keys loaded so far. Chunks are numbered
// per partition, so a retried chunk is recognised and not counted twice.
type restoreMark struct {
	next, keys uint64
	id         string
}

func decodeRestoreMark(b []byte) (restoreMark, bool) {
	if len(b) < 16 {
		return restoreMark{}, false
	}
	return restoreMark{next: binary.BigEndian.Uint64(b), keys: binary.BigEndian.Uint64(b[8:]), id: string(b[16:])}, true
}

// applyBackupOp evaluates a backup or restore command in a partition's
// state machine. Deterministic: every replica replies the same.
// slotRanged is a store that knows the slot range a split recorded for
// its partition (raftstore.Writer).
type slotRanged interface {
	SlotRange() (lo, hi uint16, ok bool)
}

func applyBackupOp(w Store, args [][]byte, out []byte) ([]byte, error) {
	bad := func(msg string) ([]byte, error) { return resp.AppendError(out, "ERR "+msg), nil }
	if len(args) < 2 {
		return bad("wrong number of arguments for " + string(args[0]))
	}
	id := string(args[1])
	switch string(args[0]) {
	case OpCut:
		ms, err := strconv.Atoi(string(args[len(args)-1]))
		if len(args) != 3 || err != nil || ms <= 0 {
			return bad("usage: kintsu.cut ID LEASE-MS")
		}
		// A partition a split gave a range answers it with the index, so
		// the backup can check that its map matched the partitions it cut.
		if r, ok := w.(slotRanged); ok {
			if lo, hi, ok := r.SlotRange(); ok {
				out = resp.AppendArrayHeader(out, 3)
				out = resp.AppendInt(out, int64(w.Index()))
				out = resp.AppendInt(resp.AppendInt(out, int64(lo)), int64(hi))
				return out, w.Cut(id, time.Duration(ms)*time.Millisecond)
			}
		}
		return resp.AppendInt(out, int64(w.Index())), w.Cut(id, time.Duration(ms)*time.Millisecond)
	case OpUncut:
		return resp.AppendSimple(out, "OK"), w.Uncut(id)
	}
	b, restoring, err := w.TxnGet(TableRestoreMark, nil)
	if err != nil {
		return out, err
	}
	mark, ok := decodeRestoreMark(b)
	restoring = restoring && ok
	if string(args[0]) == OpRestoreBegin {
		switch {
		case restoring && mark.id == id:
			if err := w.Clear(); err != nil { // the same restore starting over
				return out, err
			}
		case restoring:
			return bad(fmt.Sprintf("the partition is being restored from backup %s", mark.id))
		default:
			empty, err := w.TxnEmpty()
			if err != nil {
				return out, err
			}
			has, err := w.HasKeys()
			if err != nil {
				return out, err
			}
			if has || !empty {
				return bad("the partition is not empty: restore needs a new, empty cluster")
			}
			// Sub-keys of deleted collections may be left (the sweep's
			// work): gone before the backup's collections arrive, whose
			// versions came from another cluster and could name theirs.
			if err := w.Clear(); err != nil {
				return out, err
			}
		}
		w.SetRestoring(true)
		return resp.AppendSimple(out, "OK"), w.TxnPut(TableRestoreMark, nil, restoreMark{id: id}.encode())
	}
	if !restoring || mark.id != id {
		return bad("no restore of backup " + id + " is in progress on this partition")
	}
	if string(args[0]) == OpRestoreEnd {
		want, err := strconv.ParseUint(string(args[len(args)-1]), 10, 64)
		if len(args) != 3 || err != nil || mark.keys != want {
			return bad(fmt.Sprintf("the restore loaded %d keys into the partition, the backup holds %s", mark.keys, args[len(args)-1]))
		}
		w.SetRestoring(false)
		return resp.AppendSimple(out, "OK"), w.TxnDel(TableRestoreMark, nil)
	}
	// kintsu.restore.load ID SEQ CHUNK
	seq, err := strconv.ParseUint(string(args[len(args)-2]), 10, 64)
	switch {
	case len(args) != 4 || err != nil:
		return bad("usage: kintsu.restore.load ID SEQ CHUNK")
	case seq < mark.next:
		return resp.AppendSimple(out, "OK"), nil // a retry of a chunk already loaded
	case seq > mark.next:
		return bad(fmt.Sprintf("restore chunk %d out of order: the partition expects chunk %d", seq, mark.next))
	}
	// Check the whole chunk before changing anything.
	if err := backup.DecodeRecords(args[3], backup.CheckRecord); err != nil {
		return bad(err.Error())
	}
	err = backup.DecodeRecords(args[3], func(table byte, k, v []byte) error {
		if table == backup.TableSub {
			uk, ver, sub, _ := backup.SplitSub(k) // checked above
			return w.PutSub(uk, ver, sub, v)
		}
		if table != backup.TableData {
			return w.TxnPut(table, k, v)
		}
		mark.keys++
		_, exists, err := w.Get(k)
		if err != nil {
			return err
		}
		return w.Put(k, v, !exists)
	})
	if err != nil {
		return out, err
	}
	mark.next++
	return resp.AppendSimple(out, "OK"), w.TxnPut(TableRestoreMark, nil, mark.encode())
}

func (m restoreMark) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, m.next)
	b = binary.BigEndian.AppendUint64(b, m.keys)
	return append(b, m.id...)
}
