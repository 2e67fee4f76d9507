package chaos

import (
	"math"
	"slices"
	"sync"
	"time"
)

// bucketMS is the width of a report time bucket.
const bucketMS = 250

// recorder collects what every workload did, for throughput, latency,
// recovery and unavailability.
type recorder struct {
	start time.Time

	mu      sync.Mutex
	ops     int               // guarded by mu
	buckets map[int64]*bucket // guarded by mu; by bucket index
	writeOK map[int][]span    // guarded by mu; per partition, acknowledged writes
}

// span is when an operation started and ended, in ms since the run began.
type span struct{ begin, end int64 }

type bucket struct {
	ok, failed int
	lat        []float64 // ms of completed operations
}

func newRecorder() *recorder {
	return &recorder{start: time.Now(), buckets: map[int64]*bucket{}, writeOK: map[int][]span{}}
}

func (r *recorder) nowMS() int64 { return time.Since(r.start).Milliseconds() }

// op records one operation that started at begin. partition >= 0 marks an
// acknowledged write to that partition (it counts toward recovery).
func (r *recorder) op(begin time.Time, ok bool, partition int) {
	end := time.Now()
	ms := end.Sub(r.start).Milliseconds()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops++
	b := r.buckets[ms/bucketMS]
	if b == nil {
		b = &bucket{}
		r.buckets[ms/bucketMS] = b
	}
	if ok {
		b.ok++
		b.lat = append(b.lat, float64(end.Sub(begin).Microseconds())/1000)
		if partition >= 0 {
			r.writeOK[partition] = append(r.writeOK[partition], span{begin.Sub(r.start).Milliseconds(), ms})
		}
	} else {
		b.failed++
	}
}

func (r *recorder) opCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ops
}

// series returns one sample per bucket from 0 to the last.
func (r *recorder) series() []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	var last int64 = -1
	for i := range r.buckets {
		last = max(last, i)
	}
	out := make([]Sample, 0, last+1)
	for i := int64(0); i <= last; i++ {
		s := Sample{StartMS: i * bucketMS}
		if b := r.buckets[i]; b != nil {
			s.OK, s.Failed = b.ok, b.failed
			s.P50LatMS, s.P99LatMS = quantile(b.lat, 0.5), quantile(b.lat, 0.99)
		}
		out = append(out, s)
	}
	return out
}

// recovery returns, for a fault that starts hurting at t0, the time until
// every partition acknowledged a write issued after t0 (-1 if some never
// did). Writes already in flight at t0 do not count: they may have been
// served before the fault took hold.
func (r *recorder) recovery(t0 int64, partitions int) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	worst := int64(0)
	for p := 0; p < partitions; p++ {
		first := int64(-1)
		for _, sp := range r.writeOK[p] {
			if sp.begin >= t0 && (first < 0 || sp.end < first) {
				first = sp.end
			}
		}
		if first < 0 {
			return -1
		}
		worst = max(worst, first-t0)
	}
	return float64(worst)
}

// unavailability sums, per partition, the gaps between acknowledged writes
// longer than gapMS (the writers write continuously, so a long gap is time
// the partition could not take writes).
func (r *recorder) unavailability(partitions int, endMS, gapMS int64) []Unavailability {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Unavailability, partitions)
	for p := range out {
		out[p].Partition = p
		prev := int64(0)
		ts := make([]int64, 0, len(r.writeOK[p])+1)
		for _, sp := range r.writeOK[p] {
			ts = append(ts, sp.end)
		}
		slices.Sort(ts)
		for _, t := range append(ts, endMS) {
			if t-prev > gapMS {
				out[p].UnavailableMS += t - prev
			}
			prev = t
		}
	}
	return out
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	v := s[int(math.Round(q*float64(len(s)-1)))]
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
