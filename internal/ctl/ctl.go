package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/ring"
)

// Timeout bounds one request to a node's admin API.
const Timeout = 5 * time.Second

// maxStatusBytes bounds the status body read (a status of 16,384
// partitions is a few MiB).
const maxStatusBytes = 64 << 20

// Fetch reads GET /v1/status from the node whose admin address is addr.
func Fetch(ctx context.Context, addr string) (api.StatusJSON, error) {
	var st api.StatusJSON
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL(addr, "/v1/status"), nil)
	if err != nil {
		return st, fmt.Errorf("--http %q: %w", addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("cannot reach the admin API at %s (is --http the node's --http-addr?): %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s answered %s", addr, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxStatusBytes)).Decode(&st); err != nil {
		return st, fmt.Errorf("%s sent an unreadable status: %w", addr, err)
	}
	return st, nil
}

// PrintStatus writes the nodes and partitions of st as tables, with each
// node's own readiness from probes (nil: not asked). The cluster is
// called ready only if the answering node is and every partition has a
// leader with a quorum; the reasons follow.
func PrintStatus(w io.Writer, st api.StatusJSON, probes map[uint64]Probe) error {
	led := map[uint64]int{}
	lost := 0
	for _, p := range st.Partitions {
		if p.Leader == 0 || p.NoQuorum {
			lost++
			continue
		}
		led[p.Leader]++
	}
	silent := 0
	for _, pr := range probes {
		if !pr.Answered {
			silent++
		}
	}
	ready := "ready"
	if !st.Ready || lost > 0 {
		ready = "NOT READY"
	}
	fmt.Fprintf(w, "cluster %s, as node %d sees it (kintsu %s): %s, %d nodes, %d partitions", st.ClusterID, st.NodeID, st.Version, ready, len(st.Nodes), len(st.Partitions))
	if lost > 0 {
		fmt.Fprintf(w, ", %d without a leader with a quorum", lost)
	}
	if silent > 0 {
		fmt.Fprintf(w, ", %d not answering", silent)
	}
	fmt.Fprintln(w)
	if st.Removed {
		fmt.Fprintf(w, "node %d WAS REMOVED from the cluster: it serves no clients; stop it and wipe its data dir\n", st.NodeID)
	}
	for _, why := range st.NotReady {
		fmt.Fprintf(w, "  node %d not ready: %s\n", st.NodeID, printable(why))
	}
	if len(st.Rebuilding) > 0 {
		fmt.Fprintf(w, "  node %d is rebuilding its replicas of partitions %v from their peers (a data file held damaged copies)\n", st.NodeID, st.Rebuilding)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tREADYZ\tHEARTBEAT (UTC)\tLEADS\tRESP\tHTTP\tPEER")
	for _, n := range st.Nodes {
		hb := "-"
		if n.HeartbeatMS != 0 {
			hb = time.UnixMilli(n.HeartbeatMS).UTC().Format("15:04:05.000")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", n.ID, dash(n.State), readyz(probes, n.ID), hb, led[n.ID], dash(n.RESPAddr), dash(n.HTTPAddr), dash(n.PeerAddr))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range st.Nodes {
		if pr, ok := probes[n.ID]; ok && !pr.Ready && n.ID != st.NodeID {
			fmt.Fprintf(w, "  node %d: %s\n", n.ID, pr.Why)
		}
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tSLOTS\tREPLICAS\tLEADER\tKEYS\tAPPLIED")
	for _, p := range st.Partitions {
		keys, applied := "-", "-"
		if p.Local != "" { // only a node hosting a replica knows these
			keys, applied = fmt.Sprint(p.Keys), fmt.Sprint(p.AppliedIndex)
			if p.KeysUpperBound {
				keys = "≤" + keys // DBSIZE counts exactly
			}
		}
		reps := ids(p.Replicas)
		if len(p.Learners) > 0 {
			reps += " +" + ids(p.Learners) + " joining"
		}
		lead := leader(p.Leader)
		if p.NoQuorum {
			lead = "none with a quorum"
		}
		fmt.Fprintf(tw, "%d\t%d-%d\t%s\t%s\t%s\t%s\n", p.ID, p.SlotStart, p.SlotEnd, reps, lead, keys, applied)
	}
	return tw.Flush()
}

// Location is where one key lives.
type Location struct {
	Key       string
	Slot      uint16
	Partition api.PartitionStatus
}

// Locate finds key's slot and partition in st.
func Locate(st api.StatusJSON, key string) (Location, error) {
	slot := ring.Slot([]byte(key))
	for _, p := range st.Partitions {
		if p.SlotStart <= slot && slot <= p.SlotEnd {
			return Location{Key: key, Slot: slot, Partition: p}, nil
		}
	}
	return Location{}, fmt.Errorf("no partition covers slot %d in node %d's status", slot, st.NodeID)
}

// PrintLocation writes l as a few labelled lines.
func PrintLocation(w io.Writer, l Location, st api.StatusJSON) error {
	addr := map[uint64]string{}
	for _, n := range st.Nodes {
		addr[n.ID] = n.RESPAddr
	}
	replicas := make([]string, len(l.Partition.Replicas))
	for i, r := range l.Partition.Replicas {
		replicas[i] = fmt.Sprint(r)
		if a := addr[r]; a != "" {
			replicas[i] += " (" + a + ")"
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "key\t%q\n", l.Key)
	fmt.Fprintf(tw, "slot\t%d\n", l.Slot)
	fmt.Fprintf(tw, "partition\t%d (slots %d-%d)\n", l.Partition.ID, l.Partition.SlotStart, l.Partition.SlotEnd)
	fmt.Fprintf(tw, "replicas\t%s\n", strings.Join(replicas, ", "))
	fmt.Fprintf(tw, "leader\t%s\n", leader(l.Partition.Leader))
	fmt.Fprintf(tw, "as seen by\tnode %d\n", st.NodeID)
	return tw.Flush()
}

func ids(xs []uint64) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprint(x)
	}
	return strings.Join(out, ",")
}

func leader(id uint64) string {
	if id == 0 {
		return "none known"
	}
	return fmt.Sprint(id)
}

// readyz words a node's probe for the table.
func readyz(probes map[uint64]Probe, id uint64) string {
	pr, ok := probes[id]
	switch {
	case !ok:
		return "-"
	case !pr.Answered:
		return "no answer"
	case !pr.Ready:
		return "NOT READY"
	}
	return "ready"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
