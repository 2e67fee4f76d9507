package storage

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Pebble reports trouble in two ways, and both used to be lost: its
// Logger.Errorf (flush and compaction failures, e.g. ENOSPC while writing
// an sstable, which Pebble retries while writes pile up behind a write
// stall) and its EventListener (background errors, write stalls, on-disk
// corruption). Both now reach the node's log: errors at ERROR, stalls at
// WARN, Pebble's info chatter nowhere.
//
// A background error repeats as fast as Pebble retries (a failing flush
// is retried at once), so each distinct message is logged at most once per
// logEvery, with the number of repeats it stood for.
const logEvery = 10 * time.Second

// pebbleLogger routes Pebble's Logger to slog.
type pebbleLogger struct {
	l    *slog.Logger
	mu   sync.Mutex
	last map[string]*seen // guarded by mu
}

type seen struct {
	at     time.Time
	repeat int
}

// newPebbleLogger logs with the data dir's path on every line: an error
// from storage must name the disk.
func newPebbleLogger(l *slog.Logger, dir string) *pebbleLogger {
	if l == nil {
		l = slog.Default()
	}
	return &pebbleLogger{l: l.With("dir", dir), last: map[string]*seen{}}
}

func (p *pebbleLogger) Infof(string, ...any) {}

func (p *pebbleLogger) Errorf(format string, args ...any) {
	p.errorOnce("storage error", fmt.Sprintf(format, args...))
}

// Fatalf must not return (Pebble's contract): it logs, then panics. The
// engine loop recovers a panic into a fatal error that fences the node; in
// one of Pebble's background goroutines it ends the process, which is the
// documented fail-stop.
func (p *pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error("storage fatal error: the node stops", "err", msg)
	panic("pebble: " + msg)
}

// errorOnce logs msg at ERROR unless the same text was logged less than
// logEvery ago.
func (p *pebbleLogger) errorOnce(what, msg string) {
	now := time.Now()
	p.mu.Lock()
	s := p.last[msg]
	if s != nil && now.Sub(s.at) < logEvery {
		s.repeat++
		p.mu.Unlock()
		return
	}
	repeat := 0
	if s != nil {
		repeat = s.repeat
	}
	if len(p.last) > 1000 { // bounded: distinct messages are few
		clear(p.last)
	}
	p.last[msg] = &seen{at: now}
	p.mu.Unlock()
	if repeat > 0 {
		p.l.Error(what, "err", msg, "repeated", repeat)
		return
	}
	p.l.Error(what, "err", msg)
}

// Corruption is on-disk corruption Pebble found in one of its files.
type Corruption struct {
	Path string
	// Start and End bound the user keys the file holds (both inclusive;
	// either may be nil when unknown).
	Start, End []byte
	Detail     string
	// Groups is the range of raft groups whose keys the file may hold
	// (see GroupsIn).
	Groups GroupRange
}

// GroupRange is an inclusive range of raft group ids; All means the
// file's keys span key families, so any group may be affected.
type GroupRange struct {
	First, Last uint64
	All         bool
}

func (g GroupRange) String() string {
	switch {
	case g.All:
		return "all partitions"
	case g.First == g.Last:
		return fmt.Sprintf("partition %d", g.First)
	}
	return fmt.Sprintf("partitions %d to %d", g.First, g.Last)
}

// GroupsIn maps the key bounds of a file to the raft groups whose keys it
// may hold. Every key of a group starts with a one-byte family (raft
// state, user data, dedupe table, transaction tables, sub-keys) and the group's
// 8-byte big-endian id, so a file whose first and last keys share the
// family holds only groups between theirs; otherwise any group may be in
// it.
func GroupsIn(start, end []byte) GroupRange {
	group := func(k []byte) (byte, uint64, bool) {
		if len(k) < 9 || k[0] < prefixRaft || k[0] > prefixSub {
			return 0, 0, false
		}
		return k[0], binary.BigEndian.Uint64(k[1:9]), true
	}
	fs, gs, ok1 := group(start)
	fe, ge, ok2 := group(end)
	if !ok1 || !ok2 || fs != fe || gs > ge {
		return GroupRange{All: true}
	}
	return GroupRange{First: gs, Last: ge}
}

// eventListener logs what Pebble reports and hands corruption to
// onCorruption instead of Pebble's default, which calls Logger.Fatalf
// from whatever goroutine found it (a background compaction: a panic no
// one can recover, on every restart, since the file is still there).
func eventListener(p *pebbleLogger, onCorruption func(Corruption)) *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			p.errorOnce("storage background error (flush or compaction)", err.Error())
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			p.l.Warn("storage write stall: writes wait for flushes or compactions", "reason", info.Reason)
		},
		WriteStallEnd: func() { p.l.Info("storage write stall ended") },
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			c := Corruption{Path: info.Path, Start: info.Bounds.Start, End: info.Bounds.End.Key, Detail: fmt.Sprint(info.Details)}
			c.Groups = GroupsIn(c.Start, c.End)
			p.l.Error("storage corruption: a file of the data dir is damaged", "file", c.Path, "holds", c.Groups.String(), "err", c.Detail)
			if onCorruption != nil {
				onCorruption(c)
			}
		},
	}
}
