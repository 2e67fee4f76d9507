package kube

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/kintsu/kintsu/internal/api"
)

// Modes of a plan: how the node starts.
const (
	Bootstrap = "bootstrap" // one of the initial members (--initial-cluster)
	Join      = "join"      // a member added to a running cluster (--join)
)

// Plan is what a pod's volume records about its node.
type Plan struct {
	ID   uint64 `json:"id"`
	Mode string `json:"mode"`
	// InitialCluster: the bootstrap's --initial-cluster (Bootstrap only).
	InitialCluster string `json:"initial_cluster,omitempty"`
	// Seed: a member's peer address to join through (Join only; a
	// restart reads the cluster from its data dir and never dials it).
	Seed string `json:"seed,omitempty"`
}

// Input is what Decide sees.
type Input struct {
	Ordinal int // the pod's ordinal in its StatefulSet
	Initial int // how many ordinals bootstrap the cluster
	// PeerAddr is the peer address of the pod with the given ordinal.
	PeerAddr func(ordinal int) string
	// Prev is the plan on the volume, nil for a fresh volume.
	Prev *Plan
	// Members is the membership a running member reports, nil when no
	// member answered.
	Members []api.NodeRecord
	// Formed: the cluster's marker exists (Marker): every initial member
	// has run, so a fresh volume is never one of them starting for the
	// first time.
	Formed bool
}

// IDStride separates the ids a pod may take: ordinal o takes o+1, or,
// when that id ran before, o+1+IDStride, o+1+2×IDStride...: pods that
// join at once never pick the same id, with no one handing ids out.
// Ordinals stay below it.
const IDStride = 1000

// Decision is what the pod does.
type Decision struct {
	Plan Plan
	// Wipe: the volume's data belongs to a node the cluster removed;
	// clear it before starting.
	Wipe bool
	Why  string
}

// ErrNoCluster: a pod that can only join found no member to join.
var ErrNoCluster = errors.New("no member of the cluster answers, and this pod can only join a running cluster")

// Decide is the pod's start, by the package's invariants.
func Decide(in Input) (Decision, error) {
	if in.Ordinal < 0 || in.Initial < 1 {
		return Decision{}, fmt.Errorf("ordinal %d, initial nodes %d", in.Ordinal, in.Initial)
	}
	if in.Prev != nil {
		if r, ok := record(in.Members, in.Prev.ID); ok && r.State == api.NodeRemoved {
			fresh := in
			fresh.Prev = nil
			d, err := Decide(fresh)
			d.Wipe = true
			d.Why = fmt.Sprintf("node %d was removed from the cluster (a scale-down decommissioned it): its data is cleared; %s", in.Prev.ID, d.Why)
			return d, err
		}
		return Decision{Plan: *in.Prev, Why: fmt.Sprintf("restarting as node %d, as the volume records", in.Prev.ID)}, nil
	}
	if in.Ordinal >= IDStride {
		return Decision{}, fmt.Errorf("ordinal %d: at most %d pods", in.Ordinal, IDStride)
	}
	own := uint64(in.Ordinal) + 1
	if in.Ordinal < in.Initial && !in.Formed {
		// The cluster has not formed: this may be its first start.
		r, known := record(in.Members, own)
		switch {
		case in.Members == nil:
			return bootstrap(in, own, "no member answers and the cluster never formed: bootstrapping as one of the initial members"), nil
		case known && r.HeartbeatMS == 0 && r.State != api.NodeRemoved:
			return bootstrap(in, own, "an initial member that has never run: bootstrapping with the others"), nil
		}
	}
	if in.Members == nil {
		return Decision{}, ErrNoCluster
	}
	id := own
	for {
		if _, taken := record(in.Members, id); !taken {
			break
		}
		id += IDStride
	}
	seed := ""
	for _, r := range in.Members {
		if api.Serves(r.State) && r.PeerAddr != "" {
			seed = r.PeerAddr
			break
		}
	}
	if seed == "" {
		return Decision{}, fmt.Errorf("%w (none of the members it lists serves)", ErrNoCluster)
	}
	why := fmt.Sprintf("joining the running cluster as node %d", id)
	if id != own {
		why += fmt.Sprintf(" (node %d ran before with another volume, or was removed: an id is never reused)", own)
	}
	return Decision{Plan: Plan{ID: id, Mode: Join, Seed: seed}, Why: why}, nil
}

func bootstrap(in Input, id uint64, why string) Decision {
	var parts []string
	for o := range in.Initial {
		parts = append(parts, strconv.Itoa(o+1)+"="+in.PeerAddr(o))
	}
	return Decision{Plan: Plan{ID: id, Mode: Bootstrap, InitialCluster: strings.Join(parts, ",")}, Why: why}
}

func record(members []api.NodeRecord, id uint64) (api.NodeRecord, bool) {
	for _, r := range members {
		if r.ID == id {
			return r, true
		}
	}
	return api.NodeRecord{}, false
}

// Ordinal parses a StatefulSet pod's name, NAME-ORDINAL, into the
// StatefulSet's name and the ordinal.
func Ordinal(pod string) (set string, ordinal int, err error) {
	i := strings.LastIndexByte(pod, '-')
	if i <= 0 {
		return "", 0, fmt.Errorf("pod name %q: want a StatefulSet pod's NAME-ORDINAL", pod)
	}
	n, err := strconv.Atoi(pod[i+1:])
	if err != nil || n < 0 {
		return "", 0, fmt.Errorf("pod name %q: want a StatefulSet pod's NAME-ORDINAL", pod)
	}
	return pod[:i], n, nil
}
