package edge

import (
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// Latency, as Redis reports it, per node:
//   - every command's calls and time go into its commandStat: a histogram
//     of power-of-two microsecond buckets (1 µs to 2^25 µs, about 33 s,
//     then the rest), read by LATENCY HISTOGRAM, INFO commandstats and
//     the kintsu_command_seconds metric;
//   - with latency-monitor-threshold (ms) above 0, a command that takes
//     at least that long is a "command" latency event: LATENCY LATEST,
//     HISTORY, RESET, GRAPH and DOCTOR read the last latencyHistory of
//     them, one sample per second (the worst), as Redis keeps them.
// A command's time is its time in the node, as SLOWLOG counts it.

// latencyBuckets: bucket i holds calls of at most 2^i µs; the last one
// the rest.
const latencyBuckets = 27

// latencyHistory: samples kept per event (Redis's LATENCY_TS_LEN).
const latencyHistory = 160

// bucketOf is the histogram bucket of d.
func bucketOf(d time.Duration) int {
	us := d.Microseconds()
	if us <= 1 {
		return 0
	}
	return min(bits.Len64(uint64(us-1)), latencyBuckets-1)
}

// observe records one call of the command named name that took d.
func (s *stats) observe(name string, d time.Duration) {
	v, ok := s.perCommand.Load(name)
	if !ok {
		v, _ = s.perCommand.LoadOrStore(name, &commandStat{})
	}
	st := v.(*commandStat)
	st.usec.Add(d.Microseconds())
	st.hist[bucketOf(d)].Add(1)
}

// measured records what a data command's reply and time tell: the
// request metrics, the command's latency histogram and the latency
// monitor.
func (f *Server) measured(spec *command.Spec, reply []byte, took time.Duration) {
	f.cfg.Metrics.Requests.WithLabelValues(spec.Name, outcomeLabel(reply)).Inc()
	f.cfg.Metrics.RequestLatency.Observe(took.Seconds())
	f.stats.observe(spec.Name, took)
	f.latency.record("command", took, f.now())
}

// LatencyHistogram is a command's calls and cumulative latency counts,
// for the kintsu_command_seconds metric.
type LatencyHistogram struct {
	Command string
	Calls   uint64
	Sum     time.Duration
	// Cumulative[i] counts the calls of at most 2^i µs.
	Cumulative [latencyBuckets - 1]uint64
}

// LatencyHistograms is every command's histogram, by name.
func (f *Server) LatencyHistograms() []LatencyHistogram {
	var out []LatencyHistogram
	f.stats.perCommand.Range(func(k, v any) bool {
		st := v.(*commandStat)
		h := LatencyHistogram{Command: k.(string), Sum: time.Duration(st.usec.Load()) * time.Microsecond}
		var cum uint64
		for i := range latencyBuckets {
			cum += uint64(st.hist[i].Load())
			if i < latencyBuckets-1 {
				h.Cumulative[i] = cum
			}
		}
		h.Calls = cum
		if h.Calls > 0 {
			out = append(out, h)
		}
		return true
	})
	slices.SortFunc(out, func(a, b LatencyHistogram) int { return strings.Compare(a.Command, b.Command) })
	return out
}

// LatencyBucketBound is the upper bound of bucket i.
func LatencyBucketBound(i int) time.Duration { return time.Duration(1<<i) * time.Microsecond }

// latencyMonitor is the node's latency events (LATENCY LATEST...).
type latencyMonitor struct {
	threshold atomic.Int64 // ms; 0: off
	mu        sync.Mutex
	events    map[string]*latencyEvent // guarded by mu
}

type latencySample struct {
	at int64 // Unix seconds
	ms int64
}

type latencyEvent struct {
	samples []latencySample // oldest first, at most latencyHistory
	max     int64
}

// record notes that event took d at now, if the monitor is on and d
// reaches its threshold.
func (m *latencyMonitor) record(event string, d time.Duration, now time.Time) {
	limit := m.threshold.Load()
	ms := d.Milliseconds()
	if limit <= 0 || ms < limit {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.events == nil {
		m.events = map[string]*latencyEvent{}
	}
	e := m.events[event]
	if e == nil {
		e = &latencyEvent{}
		m.events[event] = e
	}
	e.max = max(e.max, ms)
	at := now.Unix()
	if n := len(e.samples); n > 0 && e.samples[n-1].at == at {
		e.samples[n-1].ms = max(e.samples[n-1].ms, ms)
		return
	}
	e.samples = append(e.samples, latencySample{at: at, ms: ms})
	if len(e.samples) > latencyHistory {
		e.samples = append(e.samples[:0], e.samples[1:]...)
	}
}

// setting applies CONFIG SET latency-monitor-threshold; false for any
// other parameter.
func (m *latencyMonitor) setting(name, val string) bool {
	if name != "latency-monitor-threshold" {
		return false
	}
	n, _ := strconv.ParseInt(val, 10, 64)
	m.threshold.Store(max(n, 0))
	return true
}

func init() {
	command.Register(&command.Spec{Name: "latency", Arity: -2, Flags: command.Conn, Category: command.Server, Impl: connHandler(cmdLatency)})
}

// cmdLatency answers LATENCY HISTOGRAM, LATEST, HISTORY, RESET, GRAPH,
// DOCTOR and HELP.
func cmdLatency(f *Server, args [][]byte, st *connState) []byte {
	m := &f.latency
	sub := lower(args[1])
	switch {
	case sub == "histogram":
		return f.latencyHistogram(args[2:], st.proto == 3)
	case sub == "latest" && len(args) == 2:
		m.mu.Lock()
		defer m.mu.Unlock()
		names := sortedEvents(m.events)
		out := resp.AppendArrayHeader(nil, len(names))
		for _, n := range names {
			e := m.events[n]
			last := e.samples[len(e.samples)-1]
			out = resp.AppendArrayHeader(out, 4)
			out = resp.AppendBulkString(out, n)
			out = resp.AppendInt(resp.AppendInt(resp.AppendInt(out, last.at), last.ms), e.max)
		}
		return out
	case sub == "history" && len(args) == 3:
		m.mu.Lock()
		defer m.mu.Unlock()
		e := m.events[string(args[2])]
		if e == nil {
			return resp.AppendArrayHeader(nil, 0)
		}
		out := resp.AppendArrayHeader(nil, len(e.samples))
		for _, s := range e.samples {
			out = resp.AppendInt(resp.AppendInt(resp.AppendArrayHeader(out, 2), s.at), s.ms)
		}
		return out
	case sub == "reset":
		m.mu.Lock()
		defer m.mu.Unlock()
		n := 0
		if len(args) == 2 {
			n = len(m.events)
			m.events = nil
		}
		for _, a := range args[2:] {
			if _, ok := m.events[string(a)]; ok {
				delete(m.events, string(a))
				n++
			}
		}
		return resp.AppendInt(nil, int64(n))
	case sub == "graph" && len(args) == 3:
		m.mu.Lock()
		defer m.mu.Unlock()
		e := m.events[string(args[2])]
		if e == nil {
			return resp.AppendError(nil, fmt.Sprintf("ERR No samples available for event '%s'", args[2]))
		}
		return resp.AppendBulkString(nil, latencyGraph(string(args[2]), e, f.now()))
	case sub == "doctor" && len(args) == 2:
		return resp.AppendBulkString(nil, f.latencyDoctor())
	case sub == "help" && len(args) == 2:
		return appendHelp([]string{
			"LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"DOCTOR",
			"    Return a human readable latency analysis report.",
			"GRAPH <event>",
			"    Return an ASCII latency graph for the <event> class.",
			"HISTORY <event>",
			"    Return time-latency samples for the <event> class.",
			"LATEST",
			"    Return the latest latency samples for all events.",
			"RESET [<event> ...]",
			"    Reset latency data of one or more <event> classes.",
			"    (default: reset all data for all event classes)",
			"HISTOGRAM [COMMAND ...]",
			"    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
			"    If no commands are specified then all histograms are replied.",
			"HELP",
			"    Print this help.",
		})
	}
	return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try LATENCY HELP.", args[1]))
}

func sortedEvents(m map[string]*latencyEvent) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// latencyHistogram is LATENCY HISTOGRAM [command...]: for each command
// with calls (all of them when none is named; unknown names are left
// out, as Redis does), its calls and the cumulative count at each
// power-of-two bound up to the bucket that holds its slowest call.
func (f *Server) latencyHistogram(names [][]byte, resp3 bool) []byte {
	hs := f.LatencyHistograms()
	if len(names) > 0 {
		want := map[string]bool{}
		for _, n := range names {
			want[lower(n)] = true
		}
		hs = slices.DeleteFunc(hs, func(h LatencyHistogram) bool { return !want[h.Command] })
	}
	mapOf := func(out []byte, n int) []byte {
		if resp3 {
			return resp.AppendMapHeader(out, n)
		}
		return resp.AppendArrayHeader(out, 2*n)
	}
	out := mapOf(nil, len(hs))
	for _, h := range hs {
		out = resp.AppendBulkString(out, h.Command)
		out = mapOf(out, 2)
		out = resp.AppendInt(resp.AppendBulkString(out, "calls"), int64(h.Calls))
		out = resp.AppendBulkString(out, "histogram_usec")
		var pairs [][2]int64
		for i := range latencyBuckets {
			c := h.Calls
			if i < latencyBuckets-1 {
				c = h.Cumulative[i]
			}
			if c > 0 {
				pairs = append(pairs, [2]int64{int64(LatencyBucketBound(i) / time.Microsecond), int64(c)})
			}
			if c == h.Calls {
				break
			}
		}
		out = mapOf(out, len(pairs))
		for _, p := range pairs {
			out = resp.AppendInt(resp.AppendInt(out, p[0]), p[1])
		}
	}
	return out
}

// latencyGraph draws an event's samples as Redis's LATENCY GRAPH does,
// in spirit: one column per sample, the tallest the worst.
func latencyGraph(name string, e *latencyEvent, now time.Time) string {
	const height = 8
	var b strings.Builder
	last := e.samples[len(e.samples)-1]
	fmt.Fprintf(&b, "%s - high %d ms, low %d ms (all time high %d ms)\n", name, maxSample(e), minSample(e), e.max)
	b.WriteString(strings.Repeat("-", 80) + "\n")
	top := max(maxSample(e), 1)
	for row := height; row >= 1; row-- {
		for _, s := range e.samples {
			if s.ms*height >= top*int64(row) {
				b.WriteByte('#')
			} else {
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "latest sample %ds ago\n", max(now.Unix()-last.at, 0))
	return b.String()
}

func maxSample(e *latencyEvent) int64 {
	m := int64(0)
	for _, s := range e.samples {
		m = max(m, s.ms)
	}
	return m
}

func minSample(e *latencyEvent) int64 {
	m := e.samples[0].ms
	for _, s := range e.samples {
		m = min(m, s.ms)
	}
	return m
}

// latencyDoctor is LATENCY DOCTOR's report.
func (f *Server) latencyDoctor() string {
	m := &f.latency
	if m.threshold.Load() <= 0 {
		return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Kintsu node. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it.\n"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.events) == 0 {
		return "Dave, no latency spike was observed during the lifetime of this Kintsu node.\n"
	}
	var b strings.Builder
	b.WriteString("Dave, I have observed latency spikes in this Kintsu node. What follows is a report:\n\n")
	for i, n := range sortedEvents(m.events) {
		e := m.events[n]
		var sum int64
		for _, s := range e.samples {
			sum += s.ms
		}
		fmt.Fprintf(&b, "%d. %s: %d latency spikes (average %dms, mean deviation n/a, period n/a). Worst all time event %dms.\n",
			i+1, n, len(e.samples), sum/int64(len(e.samples)), e.max)
	}
	b.WriteString("\nA Kintsu command's time is its round to its partition's leader and the replication and fsync before its reply: " +
		"look at kintsu_fsync_seconds and the partitions' leaders (kintsu ctl status) before the commands themselves.\n")
	return b.String()
}
