// Package e2e holds Kintsu's end-to-end tests: they build the kintsu
// binary, start real server processes on loopback through the launcher,
// drive them with real Redis clients (go-redis, and redis-cli,
// redis-benchmark and Python's redis package where installed), kill -9
// nodes, and check that nothing acknowledged is lost and that histories
// are linearizable (with the chaos suite's register workload and checker,
// package chaos, which also proves the checks can fail).
//
// Tests that need an outside tool skip with a clear message when it is
// missing, except under CI=true, where they fail instead.
package e2e
