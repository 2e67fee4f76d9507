package chaos

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// split splits a partition while the workloads run: the one pick names
// among those of two slots or more, at its middle slot, through node's
// admin API (any node: the steps are routed). The workloads' keys were
// laid out by the partitions the cluster began with; after splits they
// simply live in more partitions. A refusal (transactions in progress in
// the partition, a replica moving) is part of the fault's record, not a
// failure of the run: what the run checks is that the workloads'
// histories stay correct across every split that happened.
func (n *nemesis) split(node uint64, f *Fault, pick int) error {
	addr := n.c.Node(node).HTTPAddr
	st, err := fetchStatus(addr)
	if err != nil {
		return fmt.Errorf("split: status of node %d: %w", node, err)
	}
	var ids []int
	for _, p := range st.Partitions {
		if p.SlotEnd > p.SlotStart {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		f.Detail = "no partition of two slots or more"
		return nil
	}
	id := ids[pick%len(ids)]
	f.StartMS = n.rec.nowMS()
	req, err := http.NewRequest(http.MethodPost, adminURL(addr, fmt.Sprintf("/v1/partitions/%d/split", id)), nil)
	if err != nil {
		return err
	}
	resp, err := adminClient(40 * time.Second).Do(req)
	f.EndMS = n.rec.nowMS()
	if err != nil {
		f.Detail = fmt.Sprintf("partition %d: no answer (%v)", id, err)
		n.log("split: %s", f.Detail)
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	answer := strings.TrimSpace(string(b))
	if resp.StatusCode == http.StatusOK {
		f.Detail = fmt.Sprintf("partition %d split: %s", id, answer)
	} else {
		f.Detail = fmt.Sprintf("partition %d not split: %s", id, answer)
	}
	n.log("split: %s", f.Detail)
	return nil
}
