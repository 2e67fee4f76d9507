package ctl

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// tracker prints a transfer's progress every second, and once more when
// stopped.
type tracker struct {
	out        io.Writer
	verb       string
	parts      int
	totalBytes int64 // 0: unknown, estimated from the partitions done
	bytes      *atomic.Int64
	done       atomic.Int64
	start      time.Time
	quit       chan struct{}
	wg         sync.WaitGroup
}

func newTracker(out io.Writer, verb string, parts int, totalBytes int64, bytes *atomic.Int64) *tracker {
	t := &tracker{out: out, verb: verb, parts: parts, totalBytes: totalBytes, bytes: bytes, start: time.Now(), quit: make(chan struct{})}
	if out == nil {
		return t
	}
	t.wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-t.quit:
				return
			case <-tick.C:
				fmt.Fprint(t.out, "\r"+t.line())
			}
		}
	})
	return t
}

func (t *tracker) partitionDone() { t.done.Add(1) }

func (t *tracker) line() string {
	return ProgressLine(t.verb, int(t.done.Load()), t.parts, t.bytes.Load(), t.totalBytes, time.Since(t.start))
}

func (t *tracker) stop() {
	close(t.quit)
	t.wg.Wait()
	if t.out != nil {
		fmt.Fprintln(t.out, "\r"+t.line())
	}
}

// ProgressLine renders a transfer's progress: partitions done, bytes,
// rate and the time left. Without a known total the bytes still to come
// are estimated from the partitions done so far.
func ProgressLine(verb string, done, parts int, bytes, total int64, elapsed time.Duration) string {
	rate := float64(bytes) / max(elapsed.Seconds(), 0.001)
	est := total
	if est == 0 && done > 0 {
		est = bytes * int64(parts) / int64(done)
	}
	eta := "ETA ?"
	switch {
	case done == parts:
		eta = "done in " + elapsed.Round(100*time.Millisecond).String()
	case est > 0 && rate > 0:
		eta = "ETA " + time.Duration(float64(max(est-bytes, 0))/rate*float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%s %s %d/%d partitions  %s  %s/s  %s", verb, Bar(done, parts), done, parts, size(bytes), size(int64(rate)), eta)
}

// size renders a byte count in binary units.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, u := float64(n), 0
	for f >= unit && u < 4 {
		f /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGT"[u-1])
}
