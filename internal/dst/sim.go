package dst

import (
	"container/heap"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/kintsu/kintsu/internal/metrics"
)

// Plant names a bug planted on purpose, to prove the checks can fail.
type Plant string

// The planted bugs (see plants.go).
const (
	PlantNone Plant = ""
	// PlantLazyFsync acknowledges writes before they are on disk: the WAL's
	// fsync does nothing and the disk syncs by itself every second.
	PlantLazyFsync Plant = "lazy-fsync"
	// PlantForgetVote skips the fsync of a hard state (term and vote)
	// when nothing else needs one: a node that crashes forgets its vote.
	PlantForgetVote Plant = "forget-vote"
	// PlantStaleReads serves reads from local state without ReadIndex.
	PlantStaleReads Plant = "stale-reads"
	// PlantReapply re-applies the last applied entries after a restart.
	PlantReapply Plant = "reapply"
	// PlantCompactAhead compacts raft logs past the applied index that is
	// durable in Pebble.
	PlantCompactAhead Plant = "compact-ahead"
	// PlantCanary fails every run: it proves the runner reports failures.
	PlantCanary Plant = "canary"
)

// Plants lists every planted bug.
var Plants = []Plant{PlantLazyFsync, PlantForgetVote, PlantStaleReads, PlantReapply, PlantCompactAhead, PlantCanary}

// Options set what a run does; the zero value is a standard run. Fields
// left zero are drawn from the seed (swarm).
type Options struct {
	Seed uint64
	// FaultTime and HealTime: how long faults are injected, then how long
	// the healed cluster has to converge. Defaults 30s and 15s.
	FaultTime, HealTime time.Duration
	Plant               Plant
	// ReadLeases turns the engines' read leases on (raftstore.Config).
	// The simulator has no process pauses, and partitions never break
	// links (no PeerDown), so a lease too long is caught by kintsu
	// chaos's pause nemesis, not here; here leases meet every other
	// fault.
	ReadLeases bool
	// Trace keeps a line per step from step TraceFrom on (for replays),
	// or writes it to TraceOut as it happens when that is set (so a run
	// that dies, as a Pebble panic can kill it, still shows its last
	// steps); StepHashes keeps the trace hash after every step.
	Trace      bool
	TraceFrom  int
	TraceOut   io.Writer
	StepHashes bool
	// Logger for the engines; nil discards everything.
	Logger *slog.Logger
}

// Shape is what a seed drew: the cluster and its fault mix.
type Shape struct {
	Nodes, Groups, Clients int
	Loss, Dup              float64 // per message
	MaxDelay               time.Duration
	CrashEvery             time.Duration // mean time between crashes; 0 none
	OutageEvery            time.Duration // every node loses power at once
	PartitionEvery         time.Duration
	TransferEvery          time.Duration
	MoveEvery              time.Duration
	DiskFaultEvery         time.Duration
	TornTail               float64 // chance a crash tears the tail of the write in flight
	ReadShare              float64
	Skew                   bool // nodes' clocks drift and jump
}

func drawShape(r *rand.Rand) Shape {
	pick := func(xs ...time.Duration) time.Duration { return xs[r.IntN(len(xs))] }
	s := Shape{
		Nodes:          []int{3, 3, 3, 5}[r.IntN(4)],
		Groups:         1 + r.IntN(4),
		Clients:        2 + r.IntN(6),
		Loss:           []float64{0, 0.01, 0.05}[r.IntN(3)],
		Dup:            []float64{0, 0.01}[r.IntN(2)],
		MaxDelay:       pick(5*time.Millisecond, 20*time.Millisecond, 60*time.Millisecond),
		CrashEvery:     pick(0, 2*time.Second, 5*time.Second, 10*time.Second),
		OutageEvery:    pick(0, 10*time.Second, 20*time.Second),
		PartitionEvery: pick(0, 2*time.Second, 5*time.Second),
		TransferEvery:  pick(0, 3*time.Second),
		MoveEvery:      pick(0, 2*time.Second, 5*time.Second),
		DiskFaultEvery: pick(0, 0, 8*time.Second),
		TornTail:       []float64{0, 0.5}[r.IntN(2)],
		ReadShare:      []float64{0.2, 0.5}[r.IntN(2)],
		Skew:           r.IntN(3) == 0,
	}
	if s.CrashEvery == 0 && s.OutageEvery == 0 {
		// Every run loses power somewhere: it is the fault no real-process
		// test can inject, and what most durability bugs need.
		s.OutageEvery = 15 * time.Second
	}
	return s
}

func (s Shape) String() string {
	return fmt.Sprintf("%d nodes, %d groups, %d clients, loss %.2f, dup %.2f, delay ≤%v, crash/%v, outage/%v, partition/%v, transfer/%v, move/%v, disk/%v, torn %.1f, reads %.1f, skew %v",
		s.Nodes, s.Groups, s.Clients, s.Loss, s.Dup, s.MaxDelay, s.CrashEvery, s.OutageEvery, s.PartitionEvery, s.TransferEvery, s.MoveEvery, s.DiskFaultEvery, s.TornTail, s.ReadShare, s.Skew)
}

// Result is what a run found.
type Result struct {
	Seed       uint64
	Plant      Plant
	ReadLeases bool `json:",omitempty"`
	Shape      Shape
	Simulated  time.Duration
	Steps      int
	Hash       uint64   // the trace hash
	StepHash   []uint64 // the trace hash after each step (Options.StepHashes)
	// Checkpoints: the trace hash after every CheckpointEvery steps, to
	// find roughly where two runs of a seed parted.
	Checkpoints []uint64
	Faults      map[string]int
	Acked       int // acknowledged writes
	// LeaseReads counts the reads leaders served on a read lease, all
	// nodes together (0 unless ReadLeases).
	LeaseReads int `json:",omitempty"`
	Failure    string
	Trace      []string
}

// Failed reports whether the run found a problem.
func (r *Result) Failed() bool { return r.Failure != "" }

// CheckpointEvery is how many steps apart Result.Checkpoints are.
const CheckpointEvery = 1024

// Replay is the command that runs this seed again, with its trace.
func (r *Result) Replay() string {
	s := fmt.Sprintf("kintsu sim --seed %d", r.Seed)
	if r.Plant != "" {
		s += " --plant " + string(r.Plant)
	}
	if r.ReadLeases {
		s += " --read-leases"
	}
	return s + " --trace"
}

func (r *Result) Summary() string {
	var faults []string
	for _, k := range sortedStrings(r.Faults) {
		faults = append(faults, fmt.Sprintf("%s=%d", k, r.Faults[k]))
	}
	status := "ok"
	if r.Failed() {
		status = "FAIL: " + r.Failure
	}
	return fmt.Sprintf("seed %d [%s] %v simulated, %d steps, %d acked, faults %s: %s",
		r.Seed, r.Shape, r.Simulated.Round(time.Millisecond), r.Steps, r.Acked, strings.Join(faults, " "), status)
}

func sortedStrings[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// event is one thing that happens at a simulated time.
type event struct {
	at   time.Duration
	seq  uint64
	kind string
	a, b uint64
	fn   func()
}

type eventHeap []*event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(*event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// Sim is one run.
type Sim struct {
	opt       Options
	metrics   *metrics.Metrics // every engine's, shared: the result's LeaseReads
	shape     Shape
	rng       *rand.Rand
	now       time.Duration
	seq       uint64
	events    eventHeap
	nodes     []*node // by id-1
	net       *network
	work      *workload
	check     *checker
	res       *Result
	trace     uint64 // running FNV-1a state
	healed    bool
	failed    string
	stormMark time.Duration // simulated time at the last stormSteps mark
	mover     mover
}

// running makes sure one simulation runs in a process at a time: each
// replaces crypto/rand for its duration.
var running sync.Mutex

// Run runs one seed.
func Run(opt Options) *Result {
	running.Lock()
	defer running.Unlock()
	if opt.FaultTime == 0 {
		opt.FaultTime = 30 * time.Second
	}
	if opt.HealTime == 0 {
		opt.HealTime = 15 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	restore := seedCryptoRand(opt.Seed)
	defer restore()
	s := &Sim{opt: opt, metrics: metrics.New(), rng: rand.New(rand.NewPCG(opt.Seed, 0x6b696e747375)), trace: fnvOffset}
	s.shape = drawShape(s.rng)
	s.res = &Result{Seed: opt.Seed, Plant: opt.Plant, ReadLeases: opt.ReadLeases, Shape: s.shape, Faults: map[string]int{}}
	func() {
		defer func() {
			if p := recover(); p != nil {
				s.fail("panic: %v", p)
			}
		}()
		s.run()
	}()
	s.shutdown()
	s.res.Simulated = s.now
	s.res.Hash = s.trace
	var m dto.Metric
	if s.metrics.LeaseReads.Write(&m) == nil {
		s.res.LeaseReads = int(m.GetCounter().GetValue())
	}
	if s.failed != "" {
		s.res.Failure = s.failed
	}
	return s.res
}

// Bounds of one run (see run).
const (
	maxSteps   = 3_000_000
	maxPending = 500_000
	// stormSteps steps take tens of simulated seconds in a healthy run;
	// in less than stormTime they are a storm.
	stormSteps = 100_000
	stormTime  = 100 * time.Millisecond
)

const fnvOffset, fnvPrime = 14695981039346656037, 1099511628211

func (s *Sim) mix(vs ...uint64) {
	for _, v := range vs {
		for i := 0; i < 8; i++ {
			s.trace ^= v & 0xff
			s.trace *= fnvPrime
			v >>= 8
		}
	}
}

func (s *Sim) mixString(str string) {
	h := fnv.New64a()
	h.Write([]byte(str))
	s.mix(h.Sum64())
}

// at schedules fn after d; kind, a and b name the event in the trace.
func (s *Sim) at(d time.Duration, kind string, a, b uint64, fn func()) {
	s.seq++
	heap.Push(&s.events, &event{at: s.now + max(d, 0), seq: s.seq, kind: kind, a: a, b: b, fn: fn})
}

func (s *Sim) fail(format string, args ...any) {
	if s.failed == "" {
		s.failed = fmt.Sprintf("at %v: ", s.now.Round(time.Millisecond)) + fmt.Sprintf(format, args...)
	}
}

func (s *Sim) fault(kind string) { s.res.Faults[kind]++ }

func (s *Sim) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)))
}

// exp draws an exponential wait with the given mean.
func (s *Sim) exp(mean time.Duration) time.Duration {
	return time.Duration(s.rng.ExpFloat64() * float64(mean))
}

func (s *Sim) run() {
	s.net = newNetwork(s)
	s.mover.s = s
	s.check = newChecker(s)
	s.startCluster()
	s.work = newWorkload(s)
	s.work.start()
	s.scheduleFaults()
	s.hints()
	if s.opt.Plant == PlantLazyFsync {
		s.lazySync()
	}
	end := s.opt.FaultTime + s.opt.HealTime
	s.at(s.opt.FaultTime, "heal", 0, 0, s.heal)
	s.at(end-3*time.Second, "quiet", 0, 0, func() { s.work.stop() })
	for s.events.Len() > 0 && s.failed == "" {
		if s.res.Steps%stormSteps == 0 && s.res.Steps > 0 {
			if s.now-s.stormMark < stormTime {
				s.fail("runaway: %d steps in %v of simulated time: a storm of messages breeding messages", stormSteps, s.now-s.stormMark)
				return
			}
			s.stormMark = s.now
		}
		if s.res.Steps >= maxSteps || s.events.Len() >= maxPending {
			// A run must end by itself: this many steps or pending events
			// is a storm (messages breeding messages), not a cluster at work.
			s.fail("runaway: %d steps, %d events pending (normal runs take well under %d steps)", s.res.Steps, s.events.Len(), maxSteps/10)
			return
		}
		ev := heap.Pop(&s.events).(*event)
		if ev.at > end {
			break
		}
		s.now = ev.at
		s.mix(uint64(ev.at), ev.a, ev.b)
		s.mixString(ev.kind)
		ev.fn()
		s.stepNodes()
		s.res.Steps++
		if s.opt.StepHashes {
			s.res.StepHash = append(s.res.StepHash, s.trace)
		}
		if s.res.Steps%CheckpointEvery == 0 {
			s.res.Checkpoints = append(s.res.Checkpoints, s.trace)
		}
		if s.opt.Trace && s.res.Steps >= s.opt.TraceFrom {
			line := fmt.Sprintf("%d %v %s %d %d %016x", s.res.Steps, s.now, ev.kind, ev.a, ev.b, s.trace)
			if s.opt.TraceOut != nil {
				fmt.Fprintln(s.opt.TraceOut, line)
			} else {
				s.res.Trace = append(s.res.Trace, line)
			}
		}
	}
	if s.failed != "" {
		return
	}
	s.now = end
	if s.opt.Plant == PlantCanary {
		s.fail("the canary fails every run")
		return
	}
	s.check.final()
	s.work.final()
}

// stepNodes runs every node with work until it is idle, in id order.
func (s *Sim) stepNodes() {
	for {
		busy := false
		for _, n := range s.nodes {
			if n.step() {
				busy = true
			}
		}
		if !busy || s.failed != "" {
			return
		}
	}
}

func (s *Sim) shutdown() {
	for _, n := range s.nodes {
		n.close()
	}
}
