package bench

import (
	"math"
	"time"
)

// Hist is a latency histogram with logarithmic buckets: each bucket is
// about 4% wider than the one before, from 1µs to over 100 s, so a
// quantile read from it is within 4% of the true one, and it takes the
// same fixed memory however long a workload runs.
type Hist struct {
	counts [histBuckets]uint64
	n      uint64
}

const (
	histBuckets = 480
	histGrowth  = 1.04
	histMin     = time.Microsecond
)

var logGrowth = math.Log(histGrowth)

func bucketOf(d time.Duration) int {
	if d <= histMin {
		return 0
	}
	b := int(math.Log(float64(d)/float64(histMin))/logGrowth) + 1
	return min(b, histBuckets-1)
}

// upper is the largest latency bucket b holds.
func upper(b int) time.Duration {
	return time.Duration(float64(histMin) * math.Pow(histGrowth, float64(b)))
}

// Add records one latency.
func (h *Hist) Add(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
}

// Merge adds o's counts to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// Count is the number of latencies recorded.
func (h *Hist) Count() uint64 { return h.n }

// Quantile is the q-quantile (0 < q ≤ 1) as the upper edge of its bucket,
// or 0 for an empty histogram.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return upper(b)
		}
	}
	return upper(histBuckets - 1)
}
