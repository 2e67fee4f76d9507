// Package chaos is Kintsu's fault-injection and verification suite
// (`kintsu chaos`): it starts a real cluster of `kintsu server` processes,
// drives workloads with real Redis clients while a seeded nemesis injects
// faults, heals everything, waits for recovery, checks the recorded
// histories and writes a report (summary.json and report.html).
//
// Invariants:
//   - The same seed gives the same fault schedule.
//   - Every run is bounded in time and stops by itself; every wait has a
//     deadline.
//   - A check must be able to fail: each planted bug (--plant-bug) breaks
//     a guarantee that some workload and nemesis are there to catch.
package chaos
