package storage

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kintsu/kintsu/internal/durable"
)

// A corrupt sstable must not turn into a crash loop, nor into a node that
// serves or votes with a damaged copy. When the file holds only a few
// replicas' replicated state, only they are taken out (quarantine.go).
// Otherwise, when Pebble reports corruption the
// node records it in CorruptFile (outside Pebble, synced), fences itself
// and exits; every later start refuses while the file is there, with the
// message and what to do. Its peers hold the data: while it is down the
// cluster counts it dead after the dead timeout and rebuilds its replicas
// on the other nodes, and the machine comes back as a new member with an
// empty data dir. A corrupt file is found when something reads it (a
// compaction, a read, a snapshot), not at Open, hence the record: without
// it a restart would look healthy until the next compaction met the file.

// CorruptFile is the name, in the data dir, of the record of a corruption.
const CorruptFile = "CORRUPT"

// ErrCorruptDir marks a start refused because the data dir holds a recorded
// corruption.
var ErrCorruptDir = errors.New("the data dir is corrupt")

// RecordCorruption writes c into dir's CorruptFile, synced, so that the
// next start refuses. It is best effort on a failing disk: the caller
// fences the node whatever it returns.
func RecordCorruption(fs vfs.FS, dir string, c Corruption) error {
	if fs == nil {
		fs = vfs.Default
	}
	text := fmt.Sprintf("file: %s\nholds: %s\nerror: %s\n", c.Path, c.Groups, oneLine(c.Detail))
	return durable.ReplaceFile(fs, dir, CorruptFile, []byte(text))
}

// checkCorrupt refuses a data dir that recorded a corruption.
func checkCorrupt(fs vfs.FS, dir string) error {
	f, err := fs.Open(fs.PathJoin(dir, CorruptFile))
	if err != nil {
		return nil // none recorded (or unreadable: Pebble's own checks follow)
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 4096))
	return fmt.Errorf("%w: %s records on-disk corruption found while the node ran:\n%s"+
		"This node's copy cannot be trusted, so it will not start. Its peers hold the data "+
		"(unless every replica was here): after the dead timeout the cluster rebuilds its "+
		"replicas on the other nodes by itself. To bring the machine back: remove this id "+
		"(kintsu ctl node remove ID), wipe the data dir, and start it as a new member "+
		"(kintsu server --join MEMBER --id NEW-ID ...), or restore the data dir from a backup",
		ErrCorruptDir, fs.PathJoin(dir, CorruptFile), strings.TrimRight(string(b), "\n")+"\n")
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
