package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/kintsu/kintsu/internal/server"
)

// Membership nemeses: a node lost for good (beyond the dead timeout, so
// its replicas are rebuilt elsewhere), and a rolling restart.

// loseWait bounds how long the lose nemesis waits for the replication
// factor to be restored before it gives up (and says so).
const loseWait = 90 * time.Second

// lose kills f.Node with SIGKILL and keeps it down until every partition
// has its R replicas on other nodes again; the time that took is the
// fault's detail. Then the node comes back: it must drop its stale
// replicas and take its share again, under the same checks as every run.
func (n *nemesis) lose(ctx context.Context, f *Fault) error {
	f.StartMS = n.rec.nowMS()
	if err := n.c.Kill(f.Node); err != nil {
		return err
	}
	n.log("kill -9 node %d and keep it down until its replicas are rebuilt elsewhere", f.Node)
	start := time.Now()
	// Bounded by loseWait, and by the run's end unless that leaves less
	// than half a minute.
	deadline := start.Add(loseWait)
	if !n.end.IsZero() {
		deadline = minTime(deadline, maxTime(n.end, start.Add(30*time.Second)))
	}
	for {
		if n.rebuiltWithout(f.Node) {
			f.Detail = fmt.Sprintf("replication factor restored %.1f s after the kill", time.Since(start).Seconds())
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			f.Detail = fmt.Sprintf("replication factor NOT restored within %.0f s", time.Since(start).Seconds())
			break
		}
		if !sleep(ctx, 200*time.Millisecond) {
			break
		}
	}
	n.log("node %d: %s", f.Node, f.Detail)
	f.EndMS = n.rec.nowMS()
	return n.restart(ctx, f.Node)
}

// rebuiltWithout reports whether a live node's status shows every
// partition on R voters, none of them the lost node.
func (n *nemesis) rebuiltWithout(lost uint64) bool {
	for _, nd := range n.c.Nodes() {
		if nd.ID == lost || !n.c.Running(nd.ID) {
			continue
		}
		st, err := fetchStatus(nd.HTTPAddr)
		if err != nil {
			continue
		}
		replicas := 0
		for _, p := range st.Partitions {
			replicas = max(replicas, len(p.Replicas))
		}
		for _, p := range st.Partitions {
			if slices.Contains(p.Replicas, lost) || len(p.Learners) > 0 || len(p.Replicas) < replicas || p.Leader == 0 {
				return false
			}
		}
		return true
	}
	return false
}

func fetchStatus(addr string) (server.StatusJSON, error) {
	var st server.StatusJSON
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + addr + "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// rollingRestart stops every node in turn with SIGTERM (it hands its
// leaderships away and drains first), starts it again and waits until it
// is ready before the next: what an operator's upgrade does. Clients
// should notice nothing; the run's failure counts show whether they did.
func (n *nemesis) rollingRestart(ctx context.Context, f *Fault) error {
	f.Node = 0
	f.StartMS = n.rec.nowMS()
	for _, id := range n.ids() {
		if ctx.Err() != nil {
			break
		}
		if err := n.c.Stop(id, 30*time.Second); err != nil {
			n.log("rolling restart: node %d: %v", id, err)
		}
		if err := n.restart(ctx, id); err != nil {
			return err
		}
		n.log("rolling restart: node %d back", id)
	}
	f.EndMS = n.rec.nowMS()
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
