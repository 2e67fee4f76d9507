package chaos

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The stranger nemesis runs `kintsu stranger` (package stranger) against
// every node's peer port for the fault's length: heartbeats and votes with
// terms near 2^64, "your replica was removed" notices, leader messages to
// newer replica ids, appends that do not fit, random messages. It claims
// to be node 99, which is not a member; on a secure run (variant) it holds
// a certificate of the cluster's CA for node 99, or none. Every node must
// keep running and serving, no replica may be destroyed, and nothing
// acknowledged may be lost (the run's checks); the detail counts the nodes
// that logged refusing its frames.
//
// It never claims a member's name: under --insecure nothing vouches for a
// sender, so a stranger in a member's name is that member lying, and raft
// is not Byzantine-tolerant. (Such a one can, for instance, create empty
// replicas with made-up ids that stand in the way of later re-replication
// onto that node; it cannot make a node lose data.)

// strangerGrace bounds the stranger process beyond its own duration.
const strangerGrace = 15 * time.Second

func (n *nemesis) stranger(ctx context.Context, f *Fault, noCert bool, length time.Duration, seed uint64) error {
	if n.net != nil {
		return errors.New("stranger needs --network hooks (it runs on loopback)")
	}
	var via uint64
	var peers []string
	running := map[uint64]bool{}
	for _, nd := range n.c.Nodes() {
		if n.retired[nd.ID] {
			continue
		}
		peers = append(peers, fmt.Sprintf("%d=%s", nd.ID, nd.PeerAddr))
		if n.c.Running(nd.ID) {
			running[nd.ID] = true
			if via == 0 {
				via = nd.ID
			}
		}
	}
	if via == 0 {
		return errors.New("no running node")
	}
	st, err := fetchStatus(n.c.Node(via).HTTPAddr)
	if err != nil {
		return err
	}
	as := uint64(strangerID)
	certs := runCerts()
	withCert := certs != "" && !noCert
	args := n.c.Args(via)
	parts := flagValue(args, "--partitions")
	if parts == "" {
		parts = "16"
	}
	logs := n.logSizes()
	pctx, cancel := context.WithTimeout(ctx, length+strangerGrace)
	defer cancel()
	sargs := []string{"stranger", "--peers", strings.Join(peers, ","), "--cluster-id", st.ClusterID,
		"--as", strconv.FormatUint(as, 10), "--partitions", parts, "--duration", length.String(), "--seed", strconv.FormatUint(seed, 10)}
	how := "without a certificate"
	refusal := "refused a peer's raft message"
	switch {
	case withCert:
		// A certificate of the cluster's own CA, for a node that is not a
		// member: it gets through TLS, and must get nowhere after it.
		sargs = append(sargs, "--certs-dir", strangerCerts(certs))
		how = "with a certificate of the cluster's CA"
	case certs != "":
		refusal = "TLS handshake failed" // plaintext against TLS: no way in
	default:
		how = "on an insecure cluster"
	}
	cmd := exec.CommandContext(pctx, args[0], sargs...)
	f.StartMS = n.rec.nowMS()
	f.Node = 0
	n.log("stranger: a peer claiming to be node %d, %s, floods every node's peer port for %v", as, how, length.Round(time.Millisecond))
	out, err := cmd.Output()
	f.EndMS = n.rec.nowMS()
	if err != nil {
		return fmt.Errorf("kintsu stranger: %w", err)
	}
	var exited []string
	for id := range running {
		if !n.c.Running(id) {
			exited = append(exited, strconv.FormatUint(id, 10))
		}
	}
	refused := 0
	for _, id := range n.logsSince(logs, refusal) {
		if running[id] {
			refused++
		}
	}
	f.Detail = fmt.Sprintf("claiming node %d %s: %s; refused on %d of %d nodes", as, how, strings.TrimSpace(string(out)), refused, len(running))
	if len(exited) > 0 {
		f.Detail += "; node(s) " + strings.Join(exited, ", ") + " EXITED"
	}
	// Unless placement is moving replicas (lose, replace), nothing else
	// removes one while it runs: a replica deleted now was deleted on the
	// stranger's word. (Either way, the run's checks catch any loss.)
	if gone := n.logsSince(logs, "replica removed from this node"); len(gone) > 0 && !n.moves {
		f.Detail += fmt.Sprintf("; a replica was DESTROYED on node(s) %v", gone)
	}
	n.log("stranger: %s", f.Detail)
	return nil
}
