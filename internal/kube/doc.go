// Package kube runs Kintsu as a Kubernetes StatefulSet: it decides, for a
// pod, which node it is and how it starts (bootstrap with the initial
// members, restart, or join a running cluster), and whether its
// termination is a restart or a scale-down that must decommission it.
//
// The decision (Decide) is deterministic and free of I/O: it sees the
// pod's ordinal, the plan its volume recorded at an earlier start, and
// the membership a running member reports (nil when none answers). The
// edges (kintsu kube init|start|prestop) fetch those and act.
//
// Invariants:
//   - A pod's node id is written to its volume (the plan) before the node
//     first starts, and is kept for the volume's life: a restart, on any
//     host, is the same node with the same data.
//   - A fresh volume bootstraps only as one of the first --initial-nodes
//     ordinals, only before the cluster has formed (its marker, a
//     ConfigMap written once every initial member has run, is absent),
//     and only while no member reports that its id has ever run; any
//     other fresh volume joins under an id no member has ever had (a node
//     that lost its disk must never vote again under its old id: it would
//     have forgotten its votes). Once formed, a fresh volume that finds no
//     member waits for one; it never starts a cluster of its own.
//   - Pods that join at once never take the same id: ordinal o's ids are
//     o+1 modulo IDStride.
//   - A volume whose node the cluster removed (decommissioned on a
//     scale-down, then scaled up again) is wiped and joins anew: its data
//     was moved away before the removal.
//   - A pod decommissions itself only when the StatefulSet's desired
//     replicas no longer include its ordinal; a restart, an eviction or a
//     rolling update never does.
package kube
