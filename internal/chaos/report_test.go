package chaos

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

const svgNS = "http://www.w3.org/2000/svg"

// realisticReport looks like a 5-minute run with three nodes: a few hundred
// buckets, faults of several kinds and two anomalies whose evidence holds
// markup and binary bytes.
func realisticReport() Report {
	const bucket = 1000
	var series []Sample
	for i := 0; i < 300; i++ {
		s := Sample{StartMS: int64(i) * bucket, OK: 900 + i%37, Failed: i % 5, P50LatMS: 0.8 + float64(i%7)/10, P99LatMS: 4 + float64(i%11)}
		if i >= 40 && i < 55 { // the kill: throughput drops, latency spikes
			s.OK, s.Failed, s.P99LatMS = 120, 300, 2500
		}
		if i == 200 { // a bucket with no completed operation
			s.OK, s.P50LatMS, s.P99LatMS = 0, 0, 0
		}
		series = append(series, s)
	}
	var unavail []Unavailability
	for p := 0; p < 64; p++ {
		unavail = append(unavail, Unavailability{Partition: p, UnavailableMS: int64((p * 977) % 4200)})
	}
	return Report{
		BucketMS:       bucket,
		Series:         series,
		Unavailability: unavail,
		Summary: Summary{
			OK:   false,
			Seed: 424242,
			Ops:  301234,
			Anomalies: []Anomaly{
				{Workload: "register", Kind: "not-linearizable", Key: "k<script>&\x00\xff",
					Description: `read saw "b" after write of "c" was acknowledged & read by <script>alert(1)</script>`,
					Ops:         []string{`12.001 c3 write k = "c" ok`, `12.400 c1 read k -> "b" <script>alert(1)</script>`, "binary \x01\xfe\xff tail"}},
				{Workload: "set", Kind: "lost-write", Key: "set:7", Description: "element 41 acknowledged but missing from final read",
					Ops: []string{"8.000 c2 add 41 ok", "290.100 c4 read -> {1 2 3 & more}"}},
			},
			Faults: []Fault{
				{Kind: "kill", Node: 2, StartMS: 40000, EndMS: 55000, RecoveryMS: 3200},
				{Kind: "partition", Node: 1, StartMS: 90000, EndMS: 120000, RecoveryMS: 1800},
				{Kind: "clock-skew", Node: 3, StartMS: 150000, EndMS: 150000, RecoveryMS: 0},
				{Kind: "pause", Node: 0, StartMS: 180000, EndMS: 200000, RecoveryMS: -1},
				{Kind: "disk-slow", Node: 1, StartMS: 230000, EndMS: 260000, RecoveryMS: 950},
			},
			P50RecoveryMS: 1800, P99RecoveryMS: 3200, MaxRecoveryMS: 3200,
			LostWrites: 1, DurationMS: 300000, Nodes: 3, Partitions: 64,
			Nemeses: []string{"kill", "partition", "clock-skew", "pause", "disk-slow"}, Workloads: []string{"register", "set"},
			PlantBug: "drop-acked-write",
		},
	}
}

// svgBlocks returns every <svg>…</svg> block of a page.
func svgBlocks(t *testing.T, page string) []string {
	t.Helper()
	var out []string
	for rest := page; ; {
		i := strings.Index(rest, "<svg")
		if i < 0 {
			return out
		}
		j := strings.Index(rest[i:], "</svg>")
		if j < 0 {
			t.Fatalf("unterminated <svg> block")
		}
		out = append(out, rest[i:i+j+len("</svg>")])
		rest = rest[i+j+len("</svg>"):]
	}
}

// checkPage asserts what every rendered page must satisfy whatever the
// data: well-formed SVG, valid UTF-8, no script and nothing fetched from
// elsewhere.
func checkPage(t *testing.T, page string) {
	t.Helper()
	if !utf8.ValidString(page) {
		t.Error("page is not valid UTF-8")
	}
	blocks := svgBlocks(t, page)
	if len(blocks) < 3 {
		t.Errorf("got %d <svg> blocks, want at least 3", len(blocks))
	}
	for i, blk := range blocks {
		d := xml.NewDecoder(strings.NewReader(blk))
		d.Strict = true
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("svg block %d is not well-formed: %v\n%s", i, err, blk)
			}
		}
		for _, bad := range []string{"NaN", "Inf"} {
			if strings.Contains(blk, bad) {
				t.Errorf("svg block %d contains %q", i, bad)
			}
		}
	}
	lower := strings.ToLower(strings.ReplaceAll(page, svgNS, ""))
	for _, bad := range []string{"http://", "https://", "<script", "src=", "href=", "url(", "@import"} {
		if strings.Contains(lower, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
}

func TestReportRealistic(t *testing.T) {
	r := realisticReport()
	out, err := RenderHTML(r)
	if err != nil {
		t.Fatal(err)
	}
	page := string(out)
	checkPage(t, page)
	if n := strings.Count(page, "<svg"); n < 3 {
		t.Errorf("<svg appears %d times", n)
	}
	for _, want := range []string{
		"FAIL — 2 anomalies", "424242", "drop-acked-write", "301234",
		"Throughput over time", "Latency over time", "Unavailability per partition",
		"kill n2", "partition n1", "clock-skew n3", ">pause</text>", "disk-slow n1", "never",
		"&lt;script&gt;alert(1)&lt;/script&gt;", "acknowledged &amp; read", "{1 2 3 &amp; more}",
		`k&lt;script&gt;&amp;\x00\xff`, `binary \x01\xfe\xff tail`, "&#34;b&#34;",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "No anomalies.") {
		t.Error("page says no anomalies")
	}
	// Each fault label appears on both time charts.
	for _, f := range r.Summary.Faults {
		want := 2
		if f.Node == 0 {
			want = 4 // a fault on every node is labelled by its kind, as in each chart's legend
		}
		if n := strings.Count(page, ">"+faultLabel(f)+"</text>"); n != want {
			t.Errorf("label %q drawn %d times, want %d", faultLabel(f), n, want)
		}
	}
	// The instant fault is a line, the others shaded rectangles.
	if n := strings.Count(page, `fill-opacity="0.22"`); n != 2*4 {
		t.Errorf("got %d fault rectangles, want 8", n)
	}
	if dir := os.Getenv("KINTSU_CHAOS_REPORT_DUMP"); dir != "" {
		// For looking at the page by eye: KINTSU_CHAOS_REPORT_DUMP=some/dir.
		if err := WriteReport(dir, r); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReportPass(t *testing.T) {
	r := realisticReport()
	r.Summary.OK, r.Summary.Anomalies, r.Summary.PlantBug = true, nil, ""
	out, err := RenderHTML(r)
	if err != nil {
		t.Fatal(err)
	}
	page := string(out)
	checkPage(t, page)
	for _, want := range []string{`class="banner pass"`, ">PASS<", "No anomalies."} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "FAIL") || strings.Contains(page, "planted bug") {
		t.Error("a passing run without a planted bug says FAIL or names a bug")
	}
}

func TestReportEdgeCases(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	cases := map[string]Report{
		"empty":      {},
		"one bucket": {BucketMS: 500, Series: []Sample{{StartMS: 0, OK: 10, Failed: 1, P50LatMS: 1, P99LatMS: 3}}},
		"nan latency": {BucketMS: 1000, Series: []Sample{
			{StartMS: 0, OK: 5, P50LatMS: nan, P99LatMS: inf},
			{StartMS: 1000, OK: 5, P50LatMS: 2, P99LatMS: nan},
			{StartMS: 2000, OK: 5, P50LatMS: math.Inf(-1), P99LatMS: -3},
		}},
		"all zero": {BucketMS: 1000, Series: make([]Sample, 50), Unavailability: make([]Unavailability, 8)},
		"huge": {BucketMS: 1, Series: []Sample{
			{StartMS: 0, OK: math.MaxInt64, Failed: math.MaxInt64, P50LatMS: 1e300, P99LatMS: math.MaxFloat64},
			{StartMS: math.MaxInt64 / 2, OK: 1, P50LatMS: 1e-300, P99LatMS: 5e-324},
		}, Unavailability: []Unavailability{{Partition: 0, UnavailableMS: math.MaxInt64}, {Partition: 1, UnavailableMS: -5}}},
		"no bucket size": {Series: []Sample{{StartMS: 0, OK: 1}, {StartMS: 0, OK: 2}}},
		"odd faults": {Summary: Summary{
			Faults: []Fault{
				{Kind: "weird<&>\"'\x00\xff", Node: 9, StartMS: 500, EndMS: 100, RecoveryMS: nan},
				{Kind: "kill", StartMS: -1000, EndMS: math.MaxInt64, RecoveryMS: inf},
			},
			P50RecoveryMS: nan, P99RecoveryMS: inf, MaxRecoveryMS: -1,
			Anomalies: []Anomaly{{Workload: "\xff", Kind: "<", Ops: []string{""}}},
		}},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := RenderHTML(r)
			if err != nil {
				t.Fatal(err)
			}
			checkPage(t, string(out))
			if dir := os.Getenv("KINTSU_CHAOS_REPORT_DUMP"); dir != "" {
				if err := WriteReport(filepath.Join(dir, strings.ReplaceAll(name, " ", "-")), r); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestReportWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "out")
	r := realisticReport()
	// Invalid UTF-8 is written as \xNN text (checked below); keep the
	// round trip exact with valid but awkward strings.
	r.Summary.Anomalies[0].Key = "k<script>&\x00\"'\u00e9"
	r.Summary.Anomalies[0].Ops[2] = "binary \x01 tail"
	if err := WriteReport(dir, r); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, string(page))
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got Summary
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r.Summary) {
		t.Errorf("summary.json round trip:\n got %+v\nwant %+v", got, r.Summary)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("dir holds %d entries, want exactly the two reports", len(entries))
	}
}

// A summary that JSON cannot represent (NaN, Inf, invalid UTF-8) must
// still be written, without changing the caller's report.
func TestReportWriteNonFinite(t *testing.T) {
	dir := t.TempDir()
	r := Report{Summary: Summary{P50RecoveryMS: math.NaN(), P99RecoveryMS: math.Inf(1),
		Faults: []Fault{{Kind: "kill", RecoveryMS: math.Inf(1)}}}}
	if err := WriteReport(dir, r); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got Summary
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.P50RecoveryMS != 0 || got.P99RecoveryMS != -1 || got.Faults[0].RecoveryMS != -1 {
		t.Errorf("non-finite recoveries written as %v %v %v", got.P50RecoveryMS, got.P99RecoveryMS, got.Faults[0].RecoveryMS)
	}
	if got.Anomalies == nil || got.Nemeses == nil || got.Workloads == nil {
		t.Error("empty lists should be written as [], not null")
	}
	if !math.IsInf(r.Summary.Faults[0].RecoveryMS, 1) {
		t.Error("WriteReport modified the caller's faults")
	}

	r = Report{Summary: Summary{Anomalies: []Anomaly{{Key: "a\xffb", Ops: []string{"\xfe"}}}}}
	if err := WriteReport(dir, r); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(filepath.Join(dir, "summary.json"))
	got = Summary{}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if a := got.Anomalies[0]; a.Key != `a\xffb` || a.Ops[0] != `\xfe` {
		t.Errorf("binary bytes written as %q %q", a.Key, a.Ops)
	}
	if r.Summary.Anomalies[0].Ops[0] != "\xfe" {
		t.Error("WriteReport modified the caller's ops")
	}
}
