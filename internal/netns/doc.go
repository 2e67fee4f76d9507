// Package netns builds a private network of "hosts" on one Linux machine,
// so the chaos suite can run every node as a separate host and cut the
// network between nodes for real: packets are dropped by the kernel, not
// by a hook inside the process.
//
// # Topology
//
// For a Net named N with n hosts on subnet 10.X.0.0/24:
//
//	root namespace (this process, the chaos clients)
//	  N-root  10.X.0.254/24 ──veth──┐
//	                                │
//	namespace N-hub                 │
//	  N-br  bridge ── N-up ─────────┘
//	         ├── N-p1 ──veth──  namespace N-h1:  N-eth 10.X.0.1/24, lo up
//	         ├── N-p2 ──veth──  namespace N-h2:  N-eth 10.X.0.2/24, lo up
//	         └── ...
//
// Every host reaches every other host and the root namespace (10.X.0.254);
// the root namespace reaches every host. Hosts have no default route, so
// nothing they run can reach the outside network, and nothing is routed or
// forwarded by the root namespace: all traffic is switched by the bridge in
// N-hub or delivered locally, and IP forwarding is never touched.
//
// The bridge lives in its own namespace (N-hub), not in the root one, on
// purpose. When br_netfilter is loaded in the root namespace (Docker loads
// it) with net.bridge.bridge-nf-call-iptables=1, frames crossing a bridge
// there go through the root namespace's iptables FORWARD chain, whose
// policy Docker sets to DROP: host-to-host traffic on a root bridge is
// silently dropped. Fixing that would mean changing the machine's global
// firewall or sysctls. In N-hub the bridge-netfilter hooks see that
// namespace's own, empty, ruleset, so they change nothing; the root
// namespace only ever sees locally addressed traffic on N-root (its INPUT
// and OUTPUT chains), never forwarded traffic.
//
// # Cuts
//
// Cut(from, to) adds the pair (10.X.0.from, 10.X.0.to) to an nftables set
// that a bridge-family forward chain in N-hub drops: every IPv4 packet
// from host `from` to host `to` is silently discarded by the "switch", as
// a faulty network would. Nothing inside the hosts is changed, so their own
// netfilter state is the server's alone, and Heal is one flush of the set.
// Only IPv4 is dropped: ARP still passes, so hosts keep resolving each
// other and a heal takes effect at once. Adding an element that is already
// in the set and flushing an empty set are no-ops, so Cut and Heal are
// idempotent.
//
// What a cut means for TCP: dropping one direction breaks TCP in both
// directions, as a real one-way fault does. With 1→2 cut, host 1's SYNs
// and data to host 2 vanish; a connection that host 2 opens to host 1 gets
// its SYN through, but host 1's SYN-ACK is dropped; on an established
// connection host 2's data reaches host 1 but host 1's ACKs do not, so
// host 2 retransmits. Nothing fails fast: no RST or ICMP error is sent, so
// dials end with a timeout and established connections stall until TCP
// retransmission limits, TCP_USER_TIMEOUT or application keepalives (gRPC
// keepalive, Raft heartbeats) give up. UDP is genuinely one-way.
//
// # Processes
//
// Wrap(id) is the argv prefix "ip netns exec N-hID": ip enters the
// namespace and execs the command (no fork), so the started pid is the
// command's own and signals (SIGKILL, SIGSTOP, SIGTERM) reach it directly.
//
// # Invariants
//
//   - Every external command (ip, nft) runs with a timeout, so no call can
//     hang.
//   - A Net owns its name for its whole life through an exclusive flock on
//     /run/kintsu-netns/N.lock; the kernel drops the lock when the process
//     dies. CleanupStale removes only leftovers whose lock is free, so it
//     never touches a live Net of this or another process, and a crashed
//     run is cleaned up by the next one.
//   - Subnets are chosen under a machine-wide lock
//     (/run/kintsu-netns/subnet.lock) and never overlap an address or a
//     non-default route of the root namespace, including other live Nets.
//   - Create either returns a complete Net or removes everything it made.
//     Close removes every namespace and link it made (the bridge, the veths
//     and the nftables rules go with their namespaces), first killing any
//     process still inside a host, since a namespace lives as long as a
//     process is in it. Close is idempotent.
//   - Names: every namespace and link name starts with "N-"; the ones
//     visible in the root namespace are N-hub, N-h1..N-hn (namespaces) and
//     N-root (link), all within Linux's 15-character interface-name limit.
//
// Everything needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), iproute2 and
// nftables with bridge-family support; Supported says whether this process
// has them.
package netns
