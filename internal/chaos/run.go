package chaos

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/check"
	"github.com/kintsu/kintsu/internal/launcher"
	"github.com/kintsu/kintsu/internal/netns"
)

// Timing of the phases around the faults.
const (
	readyTimeout  = 90 * time.Second
	calmAfterHeal = 3 * time.Second // workloads keep running so the last fault's recovery shows
	checkTimeout  = 5 * time.Minute
	stopTimeout   = 15 * time.Second
)

// SetupError is a run that could not start or could not be checked: not a
// verdict on the cluster (kintsu chaos exits 2).
type SetupError struct{ Err error }

func (e *SetupError) Error() string { return e.Err.Error() }
func (e *SetupError) Unwrap() error { return e.Err }

// Run performs one chaos run and writes its report. The summary's OK says
// whether every check passed; an error means the run itself failed.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Summary{}, &SetupError{err}
	}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "kintsu-chaos-")
		if err != nil {
			return Summary{}, &SetupError{err}
		}
		cfg.Dir = dir
	}
	if cfg.Out == "" {
		cfg.Out = filepath.Join(cfg.Dir, "report")
	}
	say := func(format string, args ...any) {
		fmt.Fprintf(cfg.Progress, format+"\n", args...)
	}
	say("chaos: seed %d, %d nodes, %d partitions, nemeses %v, workloads %v, %v; data in %s", cfg.Seed, cfg.Nodes, cfg.Partitions, cfg.Nemeses, cfg.Workloads, cfg.Duration, cfg.Dir)
	if cfg.PlantBug != "" {
		say("chaos: PLANTED BUG %q — this run is expected to fail", cfg.PlantBug)
	}

	lo := launcher.Options{
		Binary: cfg.Binary, Nodes: cfg.Nodes, Dir: filepath.Join(cfg.Dir, "cluster"), BasePort: cfg.BasePort,
		Partitions: cfg.Partitions, Replicas: cfg.Replicas, ExtraArgs: cfg.serverArgs(),
	}
	if cfg.Secure {
		certs, tc, err := secureSetup(cfg.Dir, cfg.Nodes)
		if err != nil {
			return Summary{}, &SetupError{err}
		}
		lo.CertsDir = certs
		setTrust(tc, certs)
		defer setTrust(nil, "")
		say("chaos: secure: TLS on every port, certificates of a CA made for the run in %s", certs)
	}
	var nw *netns.Net
	if cfg.Network == "netns" {
		var err error
		if nw, err = makeNet(cfg.Nodes); err != nil {
			return Summary{}, &SetupError{err}
		}
		defer nw.Close()
		for i := 1; i <= cfg.Nodes; i++ {
			lo.Hosts = append(lo.Hosts, nw.Addr(uint64(i)))
		}
		lo.Wrap = nw.Wrap
		// The checker and the nemeses reach the nodes from another host:
		// protected mode would refuse them while no password is set.
		lo.ExtraArgs = append(lo.ExtraArgs, "--protected-mode=false")
		say("chaos: every node is its own host in a network namespace (%s.0/24)", strings.TrimSuffix(nw.Addr(1), ".1"))
	}
	c, err := launcher.Start(lo)
	if err != nil {
		return Summary{}, &SetupError{err}
	}
	defer c.StopAll(stopTimeout)
	if err := waitReady(ctx, c); err != nil {
		return Summary{}, &SetupError{err}
	}

	rec := newRecorder()
	cs := newClients(c)
	defer cs.close()
	wctx, stopWorkloads := context.WithCancel(ctx)
	defer stopWorkloads()
	var wg sync.WaitGroup
	var reg *registerWorkload
	set := &setWorkload{partitions: cfg.Partitions}
	var bank *bankWorkload
	if slices.Contains(cfg.Workloads, "bank") {
		bank = newBankWorkload(cfg.Partitions)
		if err := bank.open(ctx, cs, cfg.Seed); err != nil {
			return Summary{}, &SetupError{err}
		}
		bank.run(wctx, cs, rec, cfg.Seed, cfg.Clients, &wg)
	}
	if slices.Contains(cfg.Workloads, "register") {
		reg = &registerWorkload{hist: check.NewHistory(), keys: registerKeys, start: time.Now()}
		reg.run(wctx, cs, rec, cfg.Seed, cfg.Clients, &wg)
	}
	var list *listWorkload
	if slices.Contains(cfg.Workloads, "list") {
		list = &listWorkload{partitions: cfg.Partitions}
		list.run(wctx, cs, rec, cfg.Seed, &wg)
	}
	// The set writers also probe every partition for recovery, so they run
	// even when only the register workload is checked.
	set.run(wctx, cs, rec, cfg.Seed, &wg)
	done := make(chan struct{})
	nem := &nemesis{c: c, net: nw, rec: rec, end: rec.start.Add(cfg.Duration), retired: map[uint64]bool{}, replacedBy: map[uint64]uint64{},
		moves: slices.Contains(cfg.Nemeses, "lose") || slices.Contains(cfg.Nemeses, "replace"), log: func(f string, a ...any) { say("  %6.1fs  "+f, append([]any{time.Since(rec.start).Seconds()}, a...)...) }}
	go progress(rec, nem, cfg.Duration, say, done)

	faults := nem.run(ctx, schedule(cfg.Seed, cfg.Nemeses, cfg.Nodes, cfg.Duration))
	if err := heal(c, nw, cfg.faultHooks(), nem.retired); err != nil {
		say("chaos: healing: %v", err) // the recovery check below tells whether it mattered
	}
	// A cluster that does not come back once every fault is healed is a
	// finding about the cluster, not a failed set-up: it is reported as an
	// anomaly, and the checks that need a live cluster are skipped.
	recoverErr := waitReady(ctx, c)
	if recoverErr == nil {
		sleep(ctx, calmAfterHeal)
	}
	close(done)
	stopWorkloads()
	wg.Wait()
	endMS := rec.nowMS()

	sum := Summary{
		Seed: cfg.Seed, Ops: rec.opCount(), DurationMS: endMS, Nodes: cfg.Nodes, Partitions: cfg.Partitions,
		Nemeses: cfg.Nemeses, Workloads: cfg.Workloads, PlantBug: cfg.PlantBug, Anomalies: []Anomaly{},
	}
	if recoverErr != nil {
		say("chaos: the cluster did not recover after the faults were healed: %v", recoverErr)
		sum.Anomalies = append(sum.Anomalies, Anomaly{Workload: "recovery", Kind: "no-recovery-after-heal",
			Description: fmt.Sprintf("every fault was healed but the cluster was not ready within %v: %v (node logs are in %s)", readyTimeout, recoverErr, filepath.Join(cfg.Dir, "cluster"))})
	}
	var recoveries []float64
	for i := range faults {
		faults[i].RecoveryMS = rec.recovery(hurtsFrom(faults[i]), cfg.Partitions)
		if faults[i].RecoveryMS >= 0 {
			recoveries = append(recoveries, faults[i].RecoveryMS)
		} else {
			sum.Anomalies = append(sum.Anomalies, Anomaly{Workload: "recovery", Kind: "no-recovery",
				Description: fmt.Sprintf("after %s of node %d at %.1fs some partition never accepted a write again", faults[i].Kind, faults[i].Node, float64(faults[i].StartMS)/1000)})
		}
	}
	for _, f := range faults {
		// A membership fault that could not finish within its bound (at
		// least half a minute) means the cluster failed to heal itself.
		if (f.Kind == "lose" || f.Kind == "replace") && strings.Contains(f.Detail, "NOT") {
			sum.Anomalies = append(sum.Anomalies, Anomaly{Workload: "membership", Kind: "not-healed",
				Description: fmt.Sprintf("%s of node %d at %.1fs: %s", f.Kind, f.Node, float64(f.StartMS)/1000, f.Detail)})
		}
		// A member started over its data dir with flags that contradict
		// it must refuse to start.
		if f.Kind == "stranger" && (strings.Contains(f.Detail, "EXITED") || strings.Contains(f.Detail, "DESTROYED")) {
			sum.Anomalies = append(sum.Anomalies, Anomaly{Workload: "stranger", Kind: "node-died",
				Description: fmt.Sprintf("stranger at %.1fs: %s", float64(f.StartMS)/1000, f.Detail)})
		}
		if f.Kind == "misconfig" && strings.Contains(f.Detail, "NOT") {
			sum.Anomalies = append(sum.Anomalies, Anomaly{Workload: "misconfig", Kind: "wrong-flags-accepted",
				Description: fmt.Sprintf("misconfig at %.1fs: %s", float64(f.StartMS)/1000, f.Detail)})
		}
	}
	sum.Faults = faults
	sum.P50RecoveryMS, sum.P99RecoveryMS, sum.MaxRecoveryMS = quantile(recoveries, 0.5), quantile(recoveries, 0.99), quantile(recoveries, 1)

	say("chaos: checking %d operations…", sum.Ops)
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if reg != nil {
		unknown, worst := reg.hist.Unknowns()
		say("chaos: checking linearizability of %d register operations (%d with unknown outcome, at most %d on one key)…", reg.hist.Len(), unknown, worst)
		sum.Anomalies = append(sum.Anomalies, reg.check(cfg.Out)...)
	}
	if bank != nil {
		say("chaos: bank: %s; checking the accounts…", bank.stats())
		anomalies, err := bank.check(cctx, cs, cfg.Seed, recoverErr == nil)
		if err != nil {
			return sum, &SetupError{err}
		}
		sum.Anomalies = append(sum.Anomalies, anomalies...)
	}
	if slices.Contains(cfg.Workloads, "set") && recoverErr == nil {
		say("chaos: reading back %d acknowledged set elements…", len(set.acked))
		anomalies, lost, err := set.check(cctx, cs, cfg.Seed)
		if err != nil {
			return sum, &SetupError{err}
		}
		sum.Anomalies = append(sum.Anomalies, anomalies...)
		sum.LostWrites = lost
	}
	if list != nil && recoverErr == nil {
		say("chaos: reading back the lists, sets and sorted sets of %d partitions…", len(list.lists))
		anomalies, lost, err := list.check(cctx, cs, cfg.Seed)
		if err != nil {
			return sum, &SetupError{err}
		}
		sum.Anomalies = append(sum.Anomalies, anomalies...)
		sum.LostWrites += lost
	}
	sum.OK = len(sum.Anomalies) == 0
	rep := Report{Summary: sum, BucketMS: bucketMS, Series: rec.series(), Unavailability: rec.unavailability(cfg.Partitions, endMS, 2*bucketMS)}
	if err := WriteReport(cfg.Out, rep); err != nil {
		return sum, &SetupError{err}
	}
	verdict := "PASS"
	if !sum.OK {
		verdict = fmt.Sprintf("FAIL (%d anomalies)", len(sum.Anomalies))
	}
	say("chaos: %s — %d ops, %d faults, recovery p50 %.0f ms, p99 %.0f ms, max %.0f ms, lost writes %d; report in %s",
		verdict, sum.Ops, len(faults), sum.P50RecoveryMS, sum.P99RecoveryMS, sum.MaxRecoveryMS, sum.LostWrites, cfg.Out)
	return sum, nil
}

func waitReady(ctx context.Context, c *launcher.Cluster) error {
	rctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	return c.WaitReady(rctx)
}

// makeNet builds the hosts of a --network netns run, after removing what
// crashed earlier runs left behind.
func makeNet(nodes int) (*netns.Net, error) {
	if err := netns.Supported(); err != nil {
		return nil, fmt.Errorf("--network netns needs root, iproute2 and nftables: %w", err)
	}
	_ = netns.CleanupStale(netPrefix)
	var b [2]byte
	_, _ = crand.Read(b[:])
	return netns.Create(fmt.Sprintf("%s%04x", netPrefix, b), nodes)
}

// netPrefix starts the names of chaos runs' namespaces and links.
const netPrefix = "kc"

// heal undoes every fault still in place and returns what it could not
// undo; hooks says whether the nodes have fault hooks to clear.
func heal(c *launcher.Cluster, nw *netns.Net, hooks bool, retired map[uint64]bool) error {
	var errs []error
	if nw != nil {
		errs = append(errs, nw.Heal())
	}
	for _, nd := range c.Nodes() {
		if retired[nd.ID] {
			continue // decommissioned for good
		}
		if !c.Running(nd.ID) {
			errs = append(errs, c.Restart(nd.ID))
			continue // a fresh process has no fault in place
		}
		if err := c.Resume(nd.ID); err != nil && !errors.Is(err, launcher.ErrNotRunning) {
			errs = append(errs, err)
		}
		if hooks {
			errs = append(errs, setCut(nd.HTTPAddr, nil),
				putFault(nd.HTTPAddr, "crash", api.FaultCrash{}),
				putFault(nd.HTTPAddr, "clock", api.FaultClock{}),
				putFault(nd.HTTPAddr, "disk", api.FaultDisk{}))
		}
	}
	return errors.Join(errs...)
}

// progress prints a line every few seconds until done is closed.
func progress(rec *recorder, nem *nemesis, d time.Duration, say func(string, ...any), done <-chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			active := "faults active: none"
			if f := nem.activeFault(); f != "" {
				active = "faults active: 1, " + f
			}
			say("  %6.1fs / %v  %d ops  %s", time.Since(rec.start).Seconds(), d, rec.opCount(), active)
		}
	}
}
