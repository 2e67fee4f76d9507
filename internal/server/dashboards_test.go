package server

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"
)

// TestShippedDashboardsUseMetricsThatExist: every metric the Grafana
// dashboard (deploy/grafana) and the Prometheus alert rules
// (deploy/prometheus) query is one a node exports, so no panel or alert
// is silently empty.
func TestShippedDashboardsUseMetricsThatExist(t *testing.T) {
	var exprs []string
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	b, err := os.ReadFile("../../deploy/grafana/kintsu.json")
	if err != nil || json.Unmarshal(b, &dash) != nil || len(dash.Panels) == 0 {
		t.Fatalf("the dashboard does not read: %v", err)
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Fatalf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err = os.ReadFile("../../deploy/prometheus/kintsu-alerts.yaml")
	if err != nil || yaml.Unmarshal(b, &rules) != nil || len(rules.Groups) == 0 {
		t.Fatalf("the alert rules do not read: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Fatalf("a rule without alert or expr: %+v", r)
			}
			exprs = append(exprs, r.Expr)
		}
	}

	tc := startCluster(t, 3, nil)
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer c.Close()
	if err := c.Set(ctx5(t), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Vectors appear once a label is used; these are used only when
	// something goes wrong.
	m := tc.nodes[0].metrics
	m.LockWaits.WithLabelValues("granted")
	m.ClientsClosed.WithLabelValues("output-buffer")
	// An error reply, so kintsu_command_errors_total has a series; a peer
	// probe (clockskew.go), so the peer series have theirs.
	if err := c.Do(ctx5(t), "NOSUCHCOMMAND").Err(); err == nil {
		t.Fatal("an unknown command did not fail")
	}
	tc.nodes[0].probeClocksOnce(ctx5(t))
	// The union of every node's: a series such as a follower's lag
	// exists only on a leader.
	var body []byte
	for _, cfg := range tc.cfgs {
		resp, err := http.Get("http://" + cfg.HTTPAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = append(body, b...)
	}
	exported := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, kind, _ := strings.Cut(name, " ")
			exported[name] = true
			if kind == "histogram" {
				exported[name+"_bucket"], exported[name+"_sum"], exported[name+"_count"] = true, true, true
			}
		}
	}
	names := regexp.MustCompile(`\bkintsu_[a-z0-9_]+`)
	var missing []string
	for _, e := range exprs {
		for _, n := range names.FindAllString(e, -1) {
			if !exported[n] {
				missing = append(missing, n+" (in "+e+")")
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("queried but not exported:\n%s", strings.Join(missing, "\n"))
	}
}
