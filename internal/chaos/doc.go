// Package chaos is Kintsu's fault-injection and verification suite
// (`kintsu chaos`): it starts a real cluster of `kintsu server` processes,
// drives workloads with real Redis clients while a seeded nemesis injects
// faults, heals everything, waits for recovery, checks the recorded
// histories and writes a report (summary.json and report.html).
//
// Nemeses act from outside the nodes (signals: kill, kill-leader,
// crash-all, pause, pause-leader; packet drops between network namespaces with
// --network netns) or through fault hooks that exist only in nodes started
// with --fault-injection (transport cuts, disk faults, clock skew, and
// crash failpoints: coordinator kills a node coordinating a cross-partition
// transaction after its prepares or after its decision, participant kills
// a partition leader right after a PREPARE applied), plus membership
// faults: lose (a node down past the dead timeout until its replicas are
// rebuilt elsewhere, timed), rolling-restart (SIGTERM each node in turn)
// and replace (decommission a node, then a new node joins in its place).
// Workloads: register (linearizability of reads, writes and compare-and-set
// on hot keys, with porcupine), set (nothing acknowledged lost, nothing
// refused or never written present) and bank (transfers between accounts
// in different partitions by MULTI/EXEC and WATCH; every read of all
// accounts adds up, no checked balance goes negative).
//
// Invariants:
//   - The same seed gives the same fault schedule (kinds, targets, lengths
//     and shapes); only timing shifts with the machine.
//   - Every run is bounded in time and stops by itself; every wait has a
//     deadline. Everything a run creates (processes, namespaces) is removed
//     at its end, and what a crashed run left is removed by the next.
//   - A fault counts from the moment it is in place, and recovery only from
//     writes issued after that moment.
//   - A check must be able to fail: each planted bug (--plant-bug) breaks
//     a guarantee that some workload and nemesis are there to catch, and CI
//     proves each is caught.
//   - A cluster that does not come back once every fault is healed is an
//     anomaly (exit 1); only a run that could not start or be checked is a
//     set-up error (exit 2).
package chaos
