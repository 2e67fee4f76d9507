package chaos

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// resize splits or merges a partition while the workloads run, through
// node's admin API (any node: the steps are routed). The one pick names
// the partition: for a split, among those of two slots or more (split at
// its middle slot); for a merge, among all (merged with its neighbour;
// the placement driver first co-locates their replicas, and finishes a
// merge the answer says is pending). The workloads' keys were laid out
// by the partitions the cluster began with; after splits and merges they
// simply live in other partitions. A refusal (transactions in progress in
// the partition, a replica moving) is part of the fault's record, not a
// failure of the run: what the run checks is that the workloads'
// histories stay correct across every split and merge that happened.
func (n *nemesis) resize(node uint64, f *Fault, pick int, op string) error {
	addr := n.c.Node(node).HTTPAddr
	st, err := fetchStatus(addr)
	if err != nil {
		return fmt.Errorf("%s: status of node %d: %w", op, node, err)
	}
	var ids []int
	for _, p := range st.Partitions {
		eligible := p.SlotEnd > p.SlotStart
		if op == "merge" {
			eligible = len(st.Partitions) > 1
		}
		if eligible {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		f.Detail = "no partition to " + op
		return nil
	}
	id := ids[pick%len(ids)]
	f.StartMS = n.rec.nowMS()
	req, err := http.NewRequest(http.MethodPost, adminURL(addr, fmt.Sprintf("/v1/partitions/%d/%s", id, op)), nil)
	if err != nil {
		return err
	}
	resp, err := adminClient(40 * time.Second).Do(req)
	f.EndMS = n.rec.nowMS()
	if err != nil {
		f.Detail = fmt.Sprintf("partition %d: no answer (%v)", id, err)
		n.log("%s: %s", op, f.Detail)
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	answer := strings.TrimSpace(string(b))
	switch {
	case resp.StatusCode == http.StatusOK:
		f.Detail = fmt.Sprintf("partition %d %s: %s", id, pastTense(op), answer)
	case resp.StatusCode == http.StatusAccepted:
		f.Detail = fmt.Sprintf("partition %d %s pending (the driver finishes it): %s", id, op, answer)
	default:
		f.Detail = fmt.Sprintf("partition %d not %s: %s", id, pastTense(op), answer)
	}
	n.log("%s: %s", op, f.Detail)
	return nil
}

func pastTense(op string) string {
	if op == "merge" {
		return "merged"
	}
	return op // "split"
}
