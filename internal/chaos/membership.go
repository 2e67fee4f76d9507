package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/launcher"
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
	deadline := n.boundedWait(start)
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
		replicas := st.ReplicationFactor
		for _, p := range st.Partitions {
			replicas = max(replicas, len(p.Replicas))
		}
		for _, p := range st.Partitions {
			if slices.Contains(p.Replicas, lost) || len(p.Learners) > 0 || len(p.Replicas) != replicas || p.Leader == 0 {
				return false
			}
		}
		return true
	}
	return false
}

func fetchStatus(addr string) (api.StatusJSON, error) {
	var st api.StatusJSON
	cl := adminClient(2 * time.Second)
	resp, err := cl.Get(adminURL(addr, "/v1/status"))
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

// replace decommissions f.Node — its replicas move away first, then it is
// removed and stopped for good — and adds a new node in its place, which
// joins through --join and takes its share: the membership changes of an
// operator replacing a machine, under load. The detail gives how long
// each half took.
func (n *nemesis) replace(ctx context.Context, f *Fault) error {
	if n.retired[f.Node] || !n.c.Running(f.Node) {
		return fmt.Errorf("node %d is not running: nothing to replace", f.Node)
	}
	var via launcher.NodeInfo
	for _, nd := range n.c.Nodes() {
		if nd.ID != f.Node && !n.retired[nd.ID] && n.c.Running(nd.ID) {
			via = nd
			break
		}
	}
	if via.ID == 0 {
		return errors.New("no other running node to ask")
	}
	f.StartMS = n.rec.nowMS()
	start := time.Now()
	if err := postAdmin(via.HTTPAddr, fmt.Sprintf("/v1/nodes/%d/decommission", f.Node)); err != nil {
		return err
	}
	n.log("decommissioning node %d", f.Node)
	deadline := n.boundedWait(start)
	removed := func() bool {
		st, err := fetchStatus(via.HTTPAddr)
		if err != nil {
			return false
		}
		for _, nd := range st.Nodes {
			if nd.ID == f.Node {
				return nd.State == api.NodeRemoved
			}
		}
		return false
	}
	for !removed() {
		if time.Now().After(deadline) || !sleep(ctx, 200*time.Millisecond) {
			f.Detail = fmt.Sprintf("node %d NOT drained within %.0f s", f.Node, time.Since(start).Seconds())
			f.EndMS = n.rec.nowMS()
			return nil // it stays a draining member; the run's checks go on
		}
	}
	drained := time.Since(start)
	if err := n.c.Stop(f.Node, 30*time.Second); err != nil {
		n.log("stopping decommissioned node %d: %v", f.Node, err)
	}
	n.retired[f.Node] = true
	joinStart := time.Now()
	info, err := n.c.AddNode(via.ID)
	if err != nil {
		return fmt.Errorf("adding a node in place of %d: %w", f.Node, err)
	}
	n.replacedBy[f.Node] = info.ID
	n.log("node %d decommissioned in %.1f s and stopped; node %d joining", f.Node, drained.Seconds(), info.ID)
	holds := 0
	deadline = n.boundedWait(joinStart)
	for {
		if st, err := fetchStatus(via.HTTPAddr); err == nil {
			holds = 0
			settled := true
			for _, p := range st.Partitions {
				if slices.Contains(p.Replicas, info.ID) {
					holds++
				}
				settled = settled && len(p.Learners) == 0
			}
			if settled && holds > 0 {
				break
			}
		}
		if time.Now().After(deadline) || !sleep(ctx, 200*time.Millisecond) {
			break
		}
	}
	f.Detail = fmt.Sprintf("node %d decommissioned in %.1f s; node %d joined and held %d replicas %.1f s later", f.Node, drained.Seconds(), info.ID, holds, time.Since(joinStart).Seconds())
	n.log("%s", f.Detail)
	f.EndMS = n.rec.nowMS()
	return nil
}

// boundedWait is the deadline of a membership wait begun at start:
// loseWait, or the run's end if later than half a minute from start.
func (n *nemesis) boundedWait(start time.Time) time.Time {
	d := start.Add(loseWait)
	if !n.end.IsZero() {
		d = minTime(d, maxTime(n.end, start.Add(30*time.Second)))
	}
	return d
}

func postAdmin(addr, path string) error {
	cl := adminClient(5 * time.Second)
	resp, err := cl.Post(adminURL(addr, path), "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}
