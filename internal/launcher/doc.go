// Package launcher runs a local Kintsu cluster: one real `kintsu server`
// process per node, all on loopback, each with its own data directory and
// log file under one root directory. `kintsu dev` uses it to give a
// developer a cluster in one command; the chaos suite and end-to-end tests
// use it to kill, pause, stop and restart nodes while clients run.
//
// Layout for node i (ids start at 1), with B = Options.BasePort:
//
//	RESP  127.0.0.1:B+i
//	peer  127.0.0.1:10000+B+i
//	HTTP  127.0.0.1:1000+B+i   (GET /readyz, GET /healthz)
//	Dir/node-i/data            data directory, kept across restarts
//	Dir/node-i/kintsu.log      stdout+stderr, appended across restarts
//
// With Options.Hosts, node i listens on Hosts[i-1] instead of 127.0.0.1
// (same ports), and with Options.Wrap its command line is prefixed, e.g.
// with "ip netns exec <namespace>" so that each node runs as its own host
// in a network namespace (see package netns) and the network between
// nodes can be cut for real. The wrapper must exec the node, so the pid
// the launcher signals is still the node's own.
//
// Invariants:
//   - Every process is reaped: each started process has exactly one
//     goroutine blocked in Wait on it, so no zombie outlives its exit, and
//     StopAll returns only after every such goroutine has finished.
//   - Every wait is bounded: stopping waits at most the given timeout and
//     then escalates to SIGKILL, SIGKILL itself is waited on with a fixed
//     deadline, readiness polling ends with its context (which gets a
//     default deadline if it has none) and each HTTP probe has a short
//     client timeout.
//   - The Cluster's mutex guards only its process table. It is never held
//     across I/O, a signal, a process start, an HTTP request or a wait, so a
//     slow or stopped node can never block calls about other nodes.
//   - A node has at most one process at a time: Restart refuses a node that
//     is still running or already being started.
//   - Nodes are started in their own process group (Setpgid), so a Ctrl-C
//     in the terminal reaches only the launcher, which stops the nodes
//     gracefully itself. On Linux a node also dies with the launcher's
//     process (Pdeathsig, from one thread that never ends: spawn_linux.go),
//     so a launcher killed outright leaves no node behind.
//
// The package relies on Unix signals (SIGSTOP/SIGCONT for Pause/Resume).
package launcher
