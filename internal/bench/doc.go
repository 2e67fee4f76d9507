// Package bench is `kintsu bench`: Kintsu measured side by side with the
// systems its users compare it with, in one run on one machine, by one
// load generator.
//
// It starts each system itself on loopback — a 3-node Kintsu cluster, a
// 3-member etcd cluster, and a single redis-server with its append-only
// file synced every second and on every write — and drives each with the
// same workloads (write, read, mixed, pipelined, multi-key), the same
// number of client workers, value size and key space (every key written
// before the reads, so no system reads cheap misses). It prints one table:
// operations per second, p50 and p99 latency, the servers' CPU time per
// 1,000 operations (all processes of the system together, read from
// /proc), and each Kintsu figure's ratio to each peer.
//
// Why it is built this way:
//   - Figures are only compared within one run: the machines are shared
//     and noisy, so an absolute figure means little, a ratio measured
//     minutes apart on the same machine means much more. The systems run
//     one at a time, never side by side, so none steals the others' CPU.
//   - One load generator, in this process, with the native client of each
//     system: go-redis for Kintsu and Redis (a cluster client for Kintsu,
//     as a performance-minded user would run it), etcd's own gRPC KV API
//     for etcd. Its CPU is not counted: only the servers' is.
//   - An operation is what one command does for the user: a SET, a GET,
//     a 10-key MSET (etcd: a transaction of 10 puts); a pipeline of 16
//     SETs is 16 operations, as redis-benchmark counts them. Latency is
//     per round trip.
//   - Every wait is bounded: start-up and readiness have deadlines, each
//     request has a timeout, each workload a fixed duration, and every
//     process started is stopped (SIGTERM, then SIGKILL) before Run
//     returns.
//   - A request belongs to the window its reply ends in. Errors are
//     counted, never hidden: one ending after the warm-up counts however
//     late (a timeout outlives the window), and throughput counts only
//     successes. Server CPU is sampled at the window's two edges.
//   - Only servers this run started are measured: their ports are checked
//     free first, and Redis must answer with its own pid; peers die with
//     the bench (Pdeathsig), so a killed run leaves none behind.
package bench
