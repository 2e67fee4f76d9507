package ctl

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/api"
)

// NodeAction asks the node at addr to record an operator's decision about
// node id: "decommission" or "remove" (force: even if it is not dead).
func NodeAction(ctx context.Context, addr string, id uint64, action string, force bool) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	url := adminURL(addr, fmt.Sprintf("/v1/nodes/%d/%s", id, action))
	if force {
		url += "?force=true"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the admin API at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s refused: %s", addr, strings.TrimSpace(string(b)))
	}
	return nil
}

// replicasOn counts the replicas (voters and learners) node id holds.
func replicasOn(st api.StatusJSON, id uint64) int {
	n := 0
	for _, p := range st.Partitions {
		if slices.Contains(p.Replicas, id) || slices.Contains(p.Learners, id) {
			n++
		}
	}
	return n
}

func stateOf(st api.StatusJSON, id uint64) string {
	for _, n := range st.Nodes {
		if n.ID == id {
			return n.State
		}
	}
	return ""
}

// Bar renders a progress bar of done out of total.
func Bar(done, total int) string {
	const width = 30
	if total <= 0 {
		total, done = 1, 1
	}
	fill := done * width / total
	return "[" + strings.Repeat("#", fill) + strings.Repeat(".", width-fill) + "]"
}

// Decommission drains node id: it is marked draining, placement moves its
// replicas away, and it is removed once it holds none. Progress is
// written to out every poll until then, or until ctx ends.
func Decommission(ctx context.Context, addr string, id uint64, out io.Writer, poll time.Duration) error {
	st, err := Fetch(ctx, addr)
	if err != nil {
		return err
	}
	if stateOf(st, id) == "" {
		return fmt.Errorf("no node %d in the cluster", id)
	}
	total := replicasOn(st, id)
	if err := NodeAction(ctx, addr, id, "decommission", false); err != nil {
		return err
	}
	start := time.Now()
	for {
		st, err := Fetch(ctx, addr)
		if err == nil {
			left := replicasOn(st, id)
			total = max(total, left)
			state := stateOf(st, id)
			fmt.Fprintf(out, "\rnode %d %-9s %s %d/%d replicas moved, %s", id, state, Bar(total-left, total), total-left, total, time.Since(start).Round(time.Second))
			if state == api.NodeRemoved {
				fmt.Fprintln(out)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(out)
			return fmt.Errorf("node %d not drained yet (it keeps draining; run again to watch): %w", id, ctx.Err())
		case <-time.After(poll):
		}
	}
}
