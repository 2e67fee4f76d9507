package diskguard

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Reserve is the free space kept back from writes: a fixed size, a share of
// the volume, or (zero value) the default, the smaller of 1 GiB and 5%.
//
// Why this default: the reserve must absorb what the node keeps writing
// after it refuses client writes, as a follower of other nodes' leaders,
// plus Pebble's own work (a 64 MiB memtable flush, compactions that need
// room for their output before they delete their input) for the time it
// takes an operator to react; 1 GiB is minutes of heavy replication. On a
// small volume 1 GiB would be most of the disk, hence the 5% cap.
type Reserve struct {
	Size    uint64  // bytes, when Percent is 0
	Percent float64 // of the volume's total size, in (0, 50]
}

// DefaultReserve is the default's fixed part.
const DefaultReserve = 1 << 30

// ParseReserve reads "5%", "512MiB", "2GiB", "1GB", "1048576" or "0"
// (0 turns the guard off).
func ParseReserve(s string) (Reserve, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Reserve{}, nil // the default
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f <= 0 || f > 50 {
			return Reserve{}, fmt.Errorf("disk reserve %q: want a percentage in (0, 50]", s)
		}
		return Reserve{Percent: f}, nil
	}
	units := []struct {
		suffix string
		mult   uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := uint64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return Reserve{}, fmt.Errorf("disk reserve %q: want a size such as 512MiB or 2GiB, or a percentage such as 5%%", s)
	}
	if n == 0 {
		return Reserve{Size: 0, Percent: -1}, nil // off
	}
	return Reserve{Size: n * mult}, nil
}

// Off reports whether the guard is disabled ("0").
func (r Reserve) Off() bool { return r.Percent < 0 }

func (r Reserve) String() string {
	switch {
	case r.Off():
		return "0"
	case r.Percent > 0:
		return strconv.FormatFloat(r.Percent, 'g', -1, 64) + "%"
	case r.Size > 0:
		return fmt.Sprintf("%dMiB", r.Size>>20)
	}
	return "min(1GiB,5%)"
}

// Bytes is the reserve on a volume of total bytes, at most half of it.
func (r Reserve) Bytes(total uint64) uint64 {
	var b uint64
	switch {
	case r.Off():
		return 0
	case r.Percent > 0:
		b = uint64(float64(total) * r.Percent / 100)
	case r.Size > 0:
		b = r.Size
	default:
		b = min(DefaultReserve, total/20)
	}
	return min(b, total/2)
}

// Next decides whether the disk is full, given whether it was.
func Next(wasFull bool, free, reserve uint64) bool {
	if reserve == 0 {
		return false
	}
	if wasFull {
		return free < reserve+reserve/2
	}
	return free < reserve
}

// Sample is one reading of the disk.
type Sample struct {
	Full                 bool
	Free, Total, Reserve uint64
}

// Watch samples dir's volume every interval until ctx ends and calls
// report with every sample (the caller acts on Full and on changes).
func Watch(ctx context.Context, fs vfs.FS, dir string, r Reserve, every time.Duration, log *slog.Logger, report func(Sample)) {
	if r.Off() {
		return
	}
	if fs == nil {
		fs = vfs.Default
	}
	t := time.NewTicker(every)
	defer t.Stop()
	full, failing := false, false
	for {
		u, err := fs.GetDiskUsage(dir)
		switch {
		case err != nil && !failing:
			failing = true
			log.Error("cannot read the free space of the data dir", "dir", dir, "err", err)
		case err == nil:
			failing = false
			res := r.Bytes(u.TotalBytes)
			full = Next(full, u.AvailBytes, res)
			report(Sample{Full: full, Free: u.AvailBytes, Total: u.TotalBytes, Reserve: res})
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
