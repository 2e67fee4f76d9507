package e2e

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape is a node's /metrics, nil when it does not answer.
func scrape(httpAddr string) []byte {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return body
}

// metricValue reads one series' value from a node's /metrics; -1 when
// absent.
func metricValue(t *testing.T, httpAddr, series string) float64 {
	t.Helper()
	body := scrape(httpAddr)
	m := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`).FindSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// metricSum adds the values of name's series whose labels contain
// label (e.g. `node="3"`); -1 when there are none.
func metricSum(t *testing.T, httpAddr, name, label string) float64 {
	t.Helper()
	body := scrape(httpAddr)
	sum, found := 0.0, false
	for _, m := range regexp.MustCompile("(?m)^"+regexp.QuoteMeta(name)+`\{([^}]*)\} ([0-9.e+-]+)$`).FindAllSubmatch(body, -1) {
		if strings.Contains(string(m[1]), label) {
			v, _ := strconv.ParseFloat(string(m[2]), 64)
			sum, found = sum+v, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// TestMetricsSeeALostNode: what on-call watches follows a node's loss and
// return: every partition under-replicated while it is gone (and none
// leaderless once elections are done), the node counted suspect, its
// peers' probes unanswered and its replicas falling behind the writes,
// then all whole again once it is back.
func TestMetricsSeeALostNode(t *testing.T) {
	c := startCluster(t, 3)
	waitTopology(t, c)
	nodes := c.Nodes()
	watch := nodes[0].HTTPAddr
	if v := metricValue(t, watch, "kintsu_partitions_under_replicated"); v != 0 {
		t.Fatalf("under-replicated partitions of a whole cluster: %v", v)
	}
	if err := c.Kill(nodes[2].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every partition reported under-replicated, none leaderless", 30*time.Second, func() bool {
		return metricValue(t, watch, "kintsu_partitions_under_replicated") == partitions &&
			metricValue(t, watch, "kintsu_partitions_leaderless") == 0 &&
			metricValue(t, watch, `kintsu_nodes{state="up"}`) == 2
	})
	cl := client(nodes[0].RESPAddr)
	defer cl.Close()
	lost := `node="` + strconv.FormatUint(nodes[2].ID, 10) + `"`
	waitFor(t, "the lost node unreachable by probe and behind the writes", 30*time.Second, func() bool {
		for i := range partitions {
			_ = cl.Set(context.Background(), "lag-"+tagFor(i), "x", 0).Err()
		}
		return metricValue(t, watch, `kintsu_peer_reachable{`+lost+`}`) == 0 &&
			metricSum(t, watch, "kintsu_partition_follower_lag_entries", lost) > 0
	})
	if err := c.Restart(nodes[2].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cluster whole again", 30*time.Second, func() bool {
		return metricValue(t, watch, "kintsu_partitions_under_replicated") == 0 &&
			metricValue(t, watch, `kintsu_nodes{state="up"}`) == 3 &&
			metricValue(t, watch, "kintsu_ready") == 1
	})
	waitFor(t, "the node back reachable and caught up", 30*time.Second, func() bool {
		return metricValue(t, watch, `kintsu_peer_reachable{`+lost+`}`) == 1 &&
			metricSum(t, watch, "kintsu_partition_follower_lag_entries", lost) == 0
	})
}
