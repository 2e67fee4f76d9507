package storage

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// The raft log, hard states and applied state all go through Pebble's
// write-ahead log, and at start Pebble replays the last WAL up to the first
// record it cannot read. Until Pebble's format FormatWALSyncChunks it could
// not tell why a record was unreadable: a torn write that was never synced
// (a crash mid-write: dropping it is right) and a synced record that rotted
// on the disk (dropping it and everything after it silently rolls the
// node's raft state back: forgotten votes, lost acknowledged entries) both
// ended the replay without a word.
//
// walFormat makes every WAL chunk carry the offset up to which the log had
// been synced when it was written. A record that fails its checksum with a
// later chunk promising that the log was synced beyond it is corruption of
// synced data: Pebble refuses to open, and Open says what it means and
// what to do. An unreadable record that nothing later vouches for is a
// torn, unsynced tail: Pebble drops it, and checkWALTail logs it at WARN
// first. A data dir of an older format is upgraded on open (one way: only
// a Pebble that knows the format opens it afterwards).
//
// What this cannot see: damage to the very last synced record (nothing
// after it vouches for it), and a WAL cut short (truncated) by the file
// system. Both look like a torn tail.
const walFormat = pebble.FormatWALSyncChunks

// checkWALTail reads the newest WAL of dir and logs at WARN when it ends in
// an unreadable record that Pebble will drop as a torn tail. Corruption of
// synced records is left to Pebble's replay, which refuses it.
func checkWALTail(fs vfs.FS, dir string, log *slog.Logger) {
	logs, err := wal.Scan(wal.Dir{FS: fs, Dirname: dir})
	if err != nil || len(logs) == 0 {
		return // a new data dir, or one Pebble will report on
	}
	last := logs[len(logs)-1]
	r := last.OpenForRead()
	defer r.Close()
	records := 0
	for {
		rec, off, err := r.NextRecord()
		if err == nil {
			_, err = io.Copy(io.Discard, rec)
		}
		switch {
		case err == nil:
			records++
			continue
		case errors.Is(err, io.EOF):
			return
		case errors.Is(err, record.ErrUnexpectedEOF):
			log.Warn("storage: the last write-ahead log ends in an incomplete record, written but never synced "+
				"(the node stopped mid-write): it is dropped, as nothing was acknowledged from it",
				"file", off.PhysicalFile, "records_before", records)
		}
		return // anything else: Pebble's replay reports it
	}
}

// walError turns Pebble's refusal to replay a corrupt WAL into what it
// means for a Kintsu node and what to do.
func walError(dir string, err error) error {
	if !pebble.IsCorruptionError(err) {
		return err
	}
	return fmt.Errorf("%w: a write-ahead log record that had been synced is damaged (%v). Replaying around it "+
		"would silently roll back the raft state of the node's partitions (votes, acknowledged entries), so the "+
		"node will not start. Restore the data dir from a backup, or rebuild the node from its peers: remove this id "+
		"(kintsu ctl node remove ID), wipe %s, and start the machine as a new member (kintsu server --join MEMBER --id NEW-ID ...)",
		ErrCorruptDir, err, dir)
}
