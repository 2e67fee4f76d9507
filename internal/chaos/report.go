package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// WriteReport writes dir/summary.json (the Summary, indented JSON) and
// dir/report.html (self-contained, readable offline), creating dir if
// needed. summary.json is written first so that a rendering problem can
// never cost the machine-readable verdict of a long run.
func WriteReport(dir string, r Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("chaos report: %w", err)
	}
	var sum bytes.Buffer
	enc := json.NewEncoder(&sum)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // keep "<" and "&" in keys readable for people and jq
	if err := enc.Encode(jsonSummary(r.Summary)); err != nil {
		return fmt.Errorf("chaos report: encoding summary: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), sum.Bytes(), 0o644); err != nil {
		return fmt.Errorf("chaos report: %w", err)
	}
	page, err := RenderHTML(r)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "report.html"), page, 0o644)
	}
	if err != nil {
		return fmt.Errorf("chaos report: %w", err)
	}
	return nil
}

// jsonSummary returns a copy of s (the caller's slices are not touched)
// that encoding/json accepts and that is pleasant to consume. JSON has no
// NaN or Inf, and Marshal failing would end the run without a summary:
// +Inf recoveries become -1 ("never", as in Fault), NaN and -Inf become 0.
// Nil lists become [] so that consumers such as jq need no null checks.
func jsonSummary(s Summary) Summary {
	s.P50RecoveryMS = finiteRecovery(s.P50RecoveryMS)
	s.P99RecoveryMS = finiteRecovery(s.P99RecoveryMS)
	s.MaxRecoveryMS = finiteRecovery(s.MaxRecoveryMS)
	s.Faults = append([]Fault{}, s.Faults...)
	for i := range s.Faults {
		s.Faults[i].RecoveryMS = finiteRecovery(s.Faults[i].RecoveryMS)
	}
	// encoding/json would turn each invalid byte of a binary key into
	// U+FFFD; \xNN keeps the bytes readable, as on the page.
	bin := func(s string) string { return escapeRunes(s, func(rune) bool { return true }) }
	anomalies := make([]Anomaly, 0, len(s.Anomalies))
	for _, a := range s.Anomalies {
		a.Workload, a.Kind, a.Key, a.Description = bin(a.Workload), bin(a.Kind), bin(a.Key), bin(a.Description)
		a.Ops = append([]string(nil), a.Ops...)
		for i := range a.Ops {
			a.Ops[i] = bin(a.Ops[i])
		}
		anomalies = append(anomalies, a)
	}
	s.Anomalies = anomalies
	s.Nemeses = append([]string{}, s.Nemeses...)
	s.Workloads = append([]string{}, s.Workloads...)
	return s
}

func finiteRecovery(v float64) float64 {
	if math.IsInf(v, 1) {
		return -1
	}
	if !finite(v) {
		return 0
	}
	return v
}

// RenderHTML returns report.html's content. The page has no JavaScript and
// references nothing outside itself; every string from the report is
// sanitised and escaped.
func RenderHTML(r Report) (page []byte, err error) {
	// A bug in a chart must cost the page, not the process that has just
	// spent minutes running the cluster: turn a panic into an error.
	defer func() {
		if p := recover(); p != nil {
			page, err = nil, fmt.Errorf("rendering report: %v", p)
		}
	}()
	var b strings.Builder
	s := r.Summary
	faults := append([]Fault(nil), s.Faults...)
	sort.SliceStable(faults, func(i, j int) bool { return faults[i].StartMS < faults[j].StartMS })
	colors := faultColors(faults)
	b.WriteString(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kintsu chaos report — seed ` + strconv.FormatInt(s.Seed, 10) + `</title>
<style>` + pageCSS + `</style></head><body>
`)
	writeBanner(&b, s)
	b.WriteString("<h2>Throughput over time</h2>\n")
	writeThroughputChart(&b, r, faults, colors)
	b.WriteString("<h2>Latency over time</h2>\n")
	writeLatencyChart(&b, r, faults, colors)
	b.WriteString("<h2>Unavailability per partition</h2>\n")
	writeUnavailabilityChart(&b, r.Unavailability)
	b.WriteString("<h2>Faults</h2>\n")
	writeFaultTable(&b, faults, colors)
	b.WriteString("<h2>Anomalies</h2>\n")
	writeAnomalies(&b, s.Anomalies)
	b.WriteString("</body></html>\n")
	return []byte(b.String()), nil
}

const pageCSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;max-width:1040px;margin:0 auto;padding:16px 20px 48px;background:#fafafa}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.banner{border-radius:8px;padding:14px 18px;color:#fff}.banner.pass{background:#1b7f3b}.banner.fail{background:#b3261e}
.verdict{font-size:30px;font-weight:700;letter-spacing:.5px}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:4px 18px;margin-top:8px}
.facts span{opacity:.85}.facts b{font-weight:600}
svg.chart{display:block;width:100%;height:auto;background:#fff;border:1px solid #ddd;border-radius:4px}
.caption{color:#555;margin:4px 0}.never{color:#b3261e;font-weight:600}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.anomaly{background:#fff;border:1px solid #e3b5b2;border-left:4px solid #b3261e;border-radius:4px;padding:8px 14px;margin:10px 0}
.anomaly h3{margin:4px 0;font-size:15px}code{background:#f0f0f0;padding:0 3px}
pre{background:#f6f6f6;border:1px solid #e2e2e2;padding:8px;white-space:pre-wrap;word-break:break-all;font-size:12px}
`

func writeBanner(b *strings.Builder, s Summary) {
	// OK with anomalies is contradictory; trust the evidence and say FAIL.
	if s.OK && len(s.Anomalies) == 0 {
		b.WriteString(`<div class="banner pass"><div class="verdict">PASS</div>`)
	} else {
		noun := "anomalies"
		if len(s.Anomalies) == 1 {
			noun = "anomaly"
		}
		fmt.Fprintf(b, `<div class="banner fail"><div class="verdict">FAIL — %d %s</div>`, len(s.Anomalies), noun)
	}
	b.WriteString(`<div class="facts">`)
	fact := func(name, value string) {
		fmt.Fprintf(b, "<div><span>%s:</span> <b>%s</b></div>", name, esc(value))
	}
	fact("seed", strconv.FormatInt(s.Seed, 10))
	fact("duration", secs(s.DurationMS)+" s")
	fact("nodes", strconv.Itoa(s.Nodes))
	fact("partitions", strconv.Itoa(s.Partitions))
	fact("nemeses", list(s.Nemeses))
	fact("workloads", list(s.Workloads))
	if s.PlantBug != "" {
		fact("planted bug", s.PlantBug)
	}
	fact("operations", strconv.Itoa(s.Ops))
	fact("lost writes", strconv.Itoa(s.LostWrites))
	fact("recovery p50 / p99 / max", recoveryText(s.P50RecoveryMS, " ms")+" / "+
		recoveryText(s.P99RecoveryMS, " ms")+" / "+recoveryText(s.MaxRecoveryMS, " ms"))
	b.WriteString("</div></div>\n")
}

func list(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}

// recoveryText follows Fault's convention: negative means "never".
func recoveryText(ms float64, unit string) string {
	if math.IsNaN(ms) {
		return "n/a"
	}
	if ms < 0 || math.IsInf(ms, 1) {
		return "never"
	}
	return strconv.FormatFloat(ms, 'f', 0, 64) + unit
}

func writeFaultTable(b *strings.Builder, faults []Fault, colors map[string]string) {
	if len(faults) == 0 {
		b.WriteString("<p>No faults were injected.</p>\n")
		return
	}
	b.WriteString("<table><thead><tr><th>kind</th><th>node</th><th>start s</th><th>end s</th><th>recovery ms</th></tr></thead><tbody>\n")
	for _, f := range faults {
		rec, class := recoveryText(f.RecoveryMS, ""), "num"
		if rec == "never" {
			class += " never"
		}
		fmt.Fprintf(b, `<tr><td><span class="swatch" style="background:%s"></span>%s</td><td>%s</td><td class="num">%s</td><td class="num">%s</td><td class="%s">%s</td></tr>`+"\n",
			colors[f.Kind], esc(f.Kind), esc(faultTarget(f)), secs(f.StartMS), secs(f.EndMS), class, rec)
	}
	b.WriteString("</tbody></table>\n")
}

func writeAnomalies(b *strings.Builder, as []Anomaly) {
	if len(as) == 0 {
		b.WriteString("<p>No anomalies.</p>\n")
		return
	}
	for i, a := range as {
		fmt.Fprintf(b, `<div class="anomaly"><h3>%d. %s — %s</h3>`, i+1, esc(a.Workload), esc(a.Kind))
		if a.Key != "" {
			fmt.Fprintf(b, "<p>key <code>%s</code></p>", esc(a.Key))
		}
		fmt.Fprintf(b, "<p>%s</p>", esc(a.Description))
		if len(a.Ops) > 0 {
			b.WriteString("<pre>" + esc(strings.Join(a.Ops, "\n")) + "</pre>")
		}
		b.WriteString("</div>\n")
	}
}

// esc makes a string from the report safe as HTML and XML text or
// attribute value.
func esc(s string) string { return html.EscapeString(clean(s)) }

// clean returns s as valid UTF-8 containing only characters that XML 1.0
// allows and HTML does not treat as parse errors: keys and operations may
// hold arbitrary bytes, and one stray control byte would make an inline
// SVG invalid. Offending bytes are shown as \xNN (runes as \uNNNN) so the
// reader still sees what was there.
func clean(s string) string { return escapeRunes(s, printable) }

// escapeRunes replaces invalid UTF-8 bytes and the runes keep rejects.
func escapeRunes(s string, keep func(rune) bool) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !keep(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !keep(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case !keep(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func printable(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r < 0x7f) ||
		(r >= 0xa0 && r <= 0xd7ff) || (r >= 0xe000 && r <= 0xfffd) || (r >= 0x10000 && r <= utf8.MaxRune)
}

func nodeName(n uint64) string {
	if n == 0 {
		return "all"
	}
	return "n" + strconv.FormatUint(n, 10)
}

// faultLabel names a fault on the charts; a fault on every node is just
// its kind ("crash-all", not "crash-all all").
func faultLabel(f Fault) string {
	if f.Node == 0 {
		return f.Kind
	}
	return f.Kind + " " + nodeName(f.Node)
}

// faultTarget is what a fault hit, for the table: its detail when it has
// one (a partition's shape), else the node.
func faultTarget(f Fault) string {
	if f.Detail != "" {
		return f.Detail
	}
	return nodeName(f.Node)
}

func secs(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 1, 64) }

// faultColors gives each fault kind a colour by order of first appearance,
// so the few kinds of one run get clearly distinct colours (a hash would
// collide) and the same kind looks the same in every chart and the table.
// The palette avoids the green/red/blue/purple of the data lines.
func faultColors(fs []Fault) map[string]string {
	palette := []string{"#e69f00", "#56b4e9", "#cc79a7", "#8c6d31", "#f0e442", "#7f7f7f", "#17becf", "#bcbd22"}
	m := map[string]string{}
	for _, k := range kindOrder(fs) {
		m[k] = palette[len(m)%len(palette)]
	}
	return m
}

// kindOrder lists the distinct fault kinds in order of first appearance.
func kindOrder(fs []Fault) []string {
	var kinds []string
	seen := map[string]bool{}
	for _, f := range fs {
		if !seen[f.Kind] {
			seen[f.Kind] = true
			kinds = append(kinds, f.Kind)
		}
	}
	return kinds
}

// Chart geometry. A fixed viewBox lets the page scale charts to any width
// while all coordinates below stay in one simple unit system.
const (
	chartW, chartH = 960.0, 320.0
	padL, padR     = 72.0, 20.0
	padT, padB     = 30.0, 44.0 // room for the legend; for tick labels and axis title
	plotW, plotH   = chartW - padL - padR, chartH - padT - padB
)

// num formats an SVG coordinate. A non-finite value would make the whole
// SVG invalid, so it becomes 0; callers skip such points before this.
func num(v float64) string {
	if !finite(v) {
		v = 0
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// short formats a tick value compactly (1.5k, 20M) so labels fit the margin.
func short(v float64) string {
	for i, unit := range []string{"T", "G", "M", "k"} {
		if f := math.Pow(1000, float64(4-i)); math.Abs(v) >= f && math.Abs(v) < f*1000 {
			return strconv.FormatFloat(v/f, 'g', 4, 64) + unit
		}
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// niceStep picks a 1/2/2.5/5×10^k step giving about n intervals up to max.
func niceStep(max float64, n int) float64 {
	if !(max > 0) || !finite(max) {
		return 1
	}
	raw := max / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// yScale maps values to the plot's vertical extent, linearly from 0 or
// logarithmically between two powers of ten.
type yScale struct {
	log    bool
	lo, hi float64
	ticks  []float64
	label  func(float64) string
}

func linearScale(max float64) yScale {
	if !(max > 0) || !finite(max) {
		max = 1 // all-zero or empty data: an honest 0..1 axis rather than 0..0
	}
	step := niceStep(max, 4)
	hi := math.Ceil(max/step-1e-9) * step
	if !finite(hi) {
		hi, step = max, max/4
	}
	s := yScale{hi: hi, label: short}
	for i := 0; i <= 8 && float64(i)*step <= hi*(1+1e-9); i++ {
		s.ticks = append(s.ticks, float64(i)*step)
	}
	return s
}

// logScale covers [min, max] of the positive values. Latencies span from
// sub-millisecond to many seconds during faults, which a linear axis would
// flatten into a line at zero. The range is capped at 8 decades so one
// absurd value cannot squash everything else.
func logScale(min, max float64, label func(float64) string) yScale {
	if !(min > 0) || !(max >= min) || !finite(max) {
		min, max = 0.1, 1000
	}
	// 1e308 is the largest power of ten a float64 holds; beyond it hi = +Inf.
	hiE, loE := math.Min(math.Ceil(math.Log10(max)), 308), math.Floor(math.Log10(min))
	loE = math.Max(loE, hiE-8)
	if hiE == loE {
		hiE++
	}
	s := yScale{log: true, lo: math.Pow(10, loE), hi: math.Pow(10, hiE), label: label}
	for e, step := loE, math.Ceil((hiE-loE)/6); e <= hiE; e += step {
		s.ticks = append(s.ticks, math.Pow(10, e))
	}
	return s
}

// y returns the vertical coordinate of v, false if v cannot be drawn
// (NaN, Inf, or not positive on a log scale: an empty bucket has no
// latency, and drawing it at the bottom would invent a fast period).
func (s yScale) y(v float64) (float64, bool) {
	f := (v - s.lo) / (s.hi - s.lo)
	if s.log {
		if v <= 0 {
			return 0, false
		}
		f = (math.Log10(v) - math.Log10(s.lo)) / (math.Log10(s.hi) - math.Log10(s.lo))
	}
	if !finite(v) || !finite(f) {
		return 0, false
	}
	return padT + plotH*(1-math.Max(0, math.Min(1, f))), true
}

// timeAxis maps milliseconds since the start of the run to x. It spans
// the run and everything in it, so nothing falls off either edge.
type timeAxis struct{ t0, t1 float64 }

func newTimeAxis(r Report, bucket int64) timeAxis {
	a := timeAxis{0, float64(r.Summary.DurationMS)}
	widen := func(ms ...int64) {
		for _, v := range ms {
			a.t0, a.t1 = math.Min(a.t0, float64(v)), math.Max(a.t1, float64(v))
		}
	}
	for _, s := range r.Series {
		widen(s.StartMS, s.StartMS+bucket)
	}
	for _, f := range r.Summary.Faults {
		widen(f.StartMS, f.EndMS)
	}
	if a.t1 <= a.t0 {
		a.t1 = a.t0 + 1000
	}
	return a
}

func (a timeAxis) x(ms float64) float64 {
	return padL + plotW*math.Max(0, math.Min(1, (ms-a.t0)/(a.t1-a.t0)))
}

// bucketSize falls back to the spacing of the samples, then to one second,
// so a report with a missing BucketMS still shows rates instead of +Inf.
func bucketSize(r Report) int64 {
	if r.BucketMS > 0 {
		return r.BucketMS
	}
	if len(r.Series) >= 2 && r.Series[1].StartMS > r.Series[0].StartMS {
		return r.Series[1].StartMS - r.Series[0].StartMS
	}
	return 1000
}

type series struct {
	name, color string
	vals        []float64 // one per sample
}

func writeThroughputChart(b *strings.Builder, r Report, faults []Fault, colors map[string]string) {
	perSec := float64(bucketSize(r)) / 1000
	ok := series{name: "ok ops/s", color: "#1a9850"}
	failed := series{name: "failed ops/s", color: "#d73027"}
	max := 0.0
	for _, s := range r.Series {
		o, f := float64(s.OK)/perSec, float64(s.Failed)/perSec
		ok.vals, failed.vals = append(ok.vals, o), append(failed.vals, f)
		max = math.Max(max, math.Max(o, f))
	}
	// Headroom above the data keeps the fault labels off the lines.
	writeTimeChart(b, "Throughput over time", r, linearScale(max*1.15), "ops/s", []series{ok, failed}, faults, colors)
}

func writeLatencyChart(b *strings.Builder, r Report, faults []Fault, colors map[string]string) {
	p50 := series{name: "p50", color: "#2166ac"}
	p99 := series{name: "p99", color: "#762a83"}
	min, max := math.Inf(1), 0.0
	for _, s := range r.Series {
		p50.vals, p99.vals = append(p50.vals, s.P50LatMS), append(p99.vals, s.P99LatMS)
		for _, v := range []float64{s.P50LatMS, s.P99LatMS} {
			if v > 0 && finite(v) {
				min, max = math.Min(min, v), math.Max(max, v)
			}
		}
	}
	msLabel := func(ms float64) string {
		if ms >= 1000 {
			return short(ms/1000) + " s"
		}
		return short(ms) + " ms"
	}
	writeTimeChart(b, "Latency over time", r, logScale(min, max, msLabel), "latency (log scale)", []series{p50, p99}, faults, colors)
}

func writeTimeChart(b *strings.Builder, title string, r Report, ys yScale, yTitle string, lines []series, faults []Fault, colors map[string]string) {
	bucket := bucketSize(r)
	ta := newTimeAxis(r, bucket)
	svgOpen(b, title)
	writeYAxis(b, ys, yTitle)

	// A counter, not t += step: at huge offsets the addition could round
	// back to t and never end.
	step := niceStep((ta.t1-ta.t0)/1000, 8)
	first := math.Ceil(ta.t0/1000/step) * step
	for i := 0; i <= 20 && first+float64(i)*step <= ta.t1/1000+step*1e-9; i++ {
		t := first + float64(i)*step
		x := num(ta.x(t * 1000))
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#999"/>`, x, num(padT+plotH), x, num(padT+plotH+5))
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`, x, num(padT+plotH+18), short(t))
	}
	axisTitle(b, "seconds since start")

	// Faults go under the data so the lines stay readable; the <title>
	// is a tooltip in browsers, no script needed.
	for _, f := range faults {
		x0 := ta.x(float64(f.StartMS))
		tip := fmt.Sprintf("<title>%s: %s–%s s</title>", esc(faultLabel(f)), secs(f.StartMS), secs(f.EndMS))
		if f.EndMS <= f.StartMS {
			fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2" stroke-dasharray="4 2">%s</line>`+"\n",
				num(x0), num(padT), num(x0), num(padT+plotH), colors[f.Kind], tip)
			continue
		}
		fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s" fill-opacity="0.22">%s</rect>`+"\n",
			num(x0), num(padT), num(math.Max(ta.x(float64(f.EndMS))-x0, 1)), num(plotH), colors[f.Kind], tip)
	}

	// Points sit at the middle of their bucket; undrawable values break
	// the line rather than being drawn as zero.
	for _, l := range lines {
		var pts []string
		flush := func() {
			if len(pts) == 1 { // a lone point is invisible as a polyline
				xy := strings.Split(pts[0], ",")
				fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`, xy[0], xy[1], l.color)
			} else if len(pts) > 1 {
				fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.6" stroke-linejoin="round" points="%s"/>`, l.color, strings.Join(pts, " "))
			}
			pts = pts[:0]
		}
		for i, v := range l.vals {
			if y, ok := ys.y(v); ok {
				pts = append(pts, num(ta.x(float64(r.Series[i].StartMS)+float64(bucket)/2))+","+num(y))
			} else {
				flush()
			}
		}
		flush()
		b.WriteByte('\n')
	}

	writeFaultLabels(b, ta, faults)
	if len(r.Series) == 0 {
		noData(b, "no samples")
	}
	// Legend: the data lines, then one shaded swatch per fault kind; it is
	// cut rather than overflow, as the fault table lists every kind.
	x, names := padL, kindOrder(faults)
	for i := len(lines) - 1; i >= 0; i-- {
		names = append([]string{lines[i].name}, names...)
	}
	for i, name := range names {
		w := 32 + 7*float64(utf8.RuneCountInString(clean(name)))
		if x+w > chartW {
			break
		}
		if i < len(lines) {
			fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2.5"/>`, num(x), num(padT-12), num(x+14), num(padT-12), lines[i].color)
		} else {
			fmt.Fprintf(b, `<rect x="%s" y="%s" width="14" height="10" fill="%s" fill-opacity="0.45"/>`, num(x), num(padT-17), colors[name])
		}
		fmt.Fprintf(b, `<text x="%s" y="%s" dy="0.32em">%s</text>`, num(x+19), num(padT-12), esc(name))
		x += w
	}
	b.WriteString("\n</svg>\n")
}

// writeFaultLabels puts "kind node" at the top of each fault, moving a
// label down a row (at most four) when it would overlap the last one there.
func writeFaultLabels(b *strings.Builder, ta timeAxis, faults []Fault) {
	var rowEnd []float64
	for _, f := range faults {
		label := faultLabel(f)
		w := 7 * float64(utf8.RuneCountInString(clean(label)))
		x := math.Max(padL, math.Min(ta.x(float64(f.StartMS))+3, padL+plotW-w))
		row := 0
		for row < len(rowEnd) && rowEnd[row] > x {
			row++
		}
		if row == 4 {
			row = 0 // crowded: overlap labels rather than cover the data
		} else if row == len(rowEnd) {
			rowEnd = append(rowEnd, 0)
		}
		rowEnd[row] = x + w + 6
		fmt.Fprintf(b, `<text x="%s" y="%s" font-size="11" fill="#333" stroke="#fff" stroke-width="3" paint-order="stroke">%s</text>`+"\n",
			num(x), num(padT+13+14*float64(row)), esc(label))
	}
}

func writeUnavailabilityChart(b *strings.Builder, us []Unavailability) {
	us = append([]Unavailability(nil), us...)
	sort.SliceStable(us, func(i, j int) bool { return us[i].Partition < us[j].Partition })
	var max int64
	maxP, down := 0, 0
	for _, u := range us {
		if u.UnavailableMS > max {
			max, maxP = u.UnavailableMS, u.Partition
		}
		if u.UnavailableMS > 0 {
			down++
		}
	}
	if len(us) > 0 {
		fmt.Fprintf(b, `<p class="caption">%d of %d partitions were unavailable at some point; worst: partition %d, %d ms.</p>`+"\n",
			down, len(us), maxP, max)
	}
	// Seconds read better once outages are long; short ones stay in ms.
	unit, div := "ms", 1.0
	if max >= 5000 {
		unit, div = "s", 1000
	}
	ys := linearScale(float64(max) / div)
	svgOpen(b, "Unavailability per partition")
	writeYAxis(b, ys, "unavailable ("+unit+")")
	if len(us) == 0 {
		noData(b, "no partitions")
	}
	slot := plotW / math.Max(1, float64(len(us)))
	labelEvery := len(us)/32 + 1
	for i, u := range us {
		x := padL + slot*float64(i)
		if y, _ := ys.y(float64(u.UnavailableMS) / div); u.UnavailableMS > 0 {
			fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" fill="#e34a33"><title>partition %d: %d ms</title></rect>`,
				num(x+slot*0.1), num(y), num(math.Max(slot*0.8, 0.5)), num(padT+plotH-y), u.Partition, u.UnavailableMS)
		}
		if i%labelEvery == 0 {
			fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" font-size="10">%d</text>`, num(x+slot/2), num(padT+plotH+16), u.Partition)
		}
	}
	axisTitle(b, "partition")
	b.WriteString("</svg>\n")
}

func svgOpen(b *strings.Builder, label string) {
	fmt.Fprintf(b, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="%s" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12" fill="#222">`+"\n",
		int(chartW), int(chartH), esc(label))
}

// writeYAxis draws the frame, horizontal grid lines at the ticks and the
// rotated axis title.
func writeYAxis(b *strings.Builder, ys yScale, title string) {
	for _, t := range ys.ticks {
		if y, ok := ys.y(t); ok {
			fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e6e6e6"/>`, num(padL), num(y), num(padL+plotW), num(y))
			fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="end" dy="0.32em">%s</text>`, num(padL-6), num(y), esc(ys.label(t)))
		}
	}
	fmt.Fprintf(b, "\n"+`<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="#999"/>`+"\n", num(padL), num(padT), num(plotW), num(plotH))
	fmt.Fprintf(b, `<text transform="rotate(-90)" x="%s" y="16" text-anchor="middle" fill="#555">%s</text>`+"\n", num(-(padT + plotH/2)), esc(title))
}

func axisTitle(b *strings.Builder, title string) {
	fmt.Fprintf(b, "\n"+`<text x="%s" y="%s" text-anchor="middle" fill="#555">%s</text>`+"\n", num(padL+plotW/2), num(chartH-6), esc(title))
}

func noData(b *strings.Builder, msg string) {
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" font-size="16" fill="#888">%s</text>`+"\n", num(padL+plotW/2), num(padT+plotH/2), esc(msg))
}
