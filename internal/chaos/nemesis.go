package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/clock"
	"github.com/kintsu/kintsu/internal/launcher"
	"github.com/kintsu/kintsu/internal/netns"
)

// event is one scheduled fault. The schedule is a pure function of the
// seed, the nemeses and the node count, so a seed replays its faults.
type event struct {
	kind   string
	node   uint64 // target for kill/pause; kill-leader and pause-leader pick at run time
	at     time.Duration
	length time.Duration
	cut    cutPlan // partition only
	skew   skew    // clock only
	disk   diskPlan
	crash  string // coordinator and participant: the failpoint armed
	// variant picks among a nemesis's forms (misconfig: a foreign node
	// or a member restarted with wrong flags).
	variant int
}

// schedule lays out faults over d: a short warm-up, then faults of 1–3 s
// separated by 1.5–3 s of calm so recovery can be seen.
func schedule(seed int64, nemeses []string, nodes int, d time.Duration) []event {
	rng := rand.New(rand.NewPCG(uint64(seed), 42))
	var out []event
	for t := 2 * time.Second; ; {
		e := event{
			kind:   nemeses[rng.IntN(len(nemeses))],
			node:   uint64(rng.IntN(nodes)) + 1,
			at:     t,
			length: time.Second + time.Duration(rng.IntN(2000))*time.Millisecond,
		}
		if e.at+e.length > d {
			return out
		}
		switch e.kind {
		case "pause-leader":
			e.length = pauseLeaderLength(e.length)
		case "partition":
			e.cut = planCut(rng, e.node, nodes)
		case "clock":
			e.skew = planSkew(rng)
		case "disk":
			e.disk = planDisk(rng)
		case "coordinator":
			e.crash = coordinatorPoints[rng.IntN(len(coordinatorPoints))]
		case "participant":
			e.crash = api.FailParticipantPrepared
		case "misconfig", "stranger":
			e.variant = rng.IntN(2)
		case "split", "merge":
			e.variant = rng.IntN(1 << 16) // which partition
		}
		out = append(out, e)
		t = e.at + e.length + 1500*time.Millisecond + time.Duration(rng.IntN(1500))*time.Millisecond
	}
}

// pauseLeaderLength maps a drawn fault length (1–3 s) to 1.5–2.5 s for
// pause-leader: long enough that the others elect a leader (a few
// election timeouts) and acknowledge writes, short enough that clients
// still wait on the paused one (opTimeout) and see what it answers when
// it wakes up believing it still leads. A leader that serves reads from
// then (a lease that outlived it) is caught there.
func pauseLeaderLength(drawn time.Duration) time.Duration {
	return 1500*time.Millisecond + (drawn-time.Second)/2
}

// nemesis applies a schedule to a cluster.
type nemesis struct {
	c   *launcher.Cluster
	net *netns.Net // set with --network netns: cuts drop packets
	rec *recorder
	end time.Time // the run's scheduled end: no fault starts after it
	// retired nodes were decommissioned by the replace nemesis (stopped
	// for good); replacedBy names the node that joined in their place.
	// Only the nemesis goroutine writes them, before heal reads them.
	retired    map[uint64]bool
	replacedBy map[uint64]uint64
	// moves: the run's nemeses make placement move replicas (lose,
	// replace), so replicas are removed by the cluster itself at any time.
	moves  bool
	log    func(format string, args ...any)
	active atomic.Pointer[string] // the fault in progress, for the progress line
}

// activeFault names the fault in progress, "" when calm.
func (n *nemesis) activeFault() string {
	if p := n.active.Load(); p != nil {
		return *p
	}
	return ""
}

// sleepUntil waits until the run reaches at; false if ctx ended first.
func (n *nemesis) sleepUntil(ctx context.Context, at time.Duration) bool {
	return sleep(ctx, time.Until(n.rec.start.Add(at)))
}

// sleep waits d; false if ctx ended first.
var sleep = clock.Sleep

// run applies every event in order and returns the faults as they happened.
func (n *nemesis) run(ctx context.Context, events []event) []Fault {
	var faults []Fault
	for _, e := range events {
		if !n.sleepUntil(ctx, e.at) {
			break
		}
		if !n.end.IsZero() && time.Now().After(n.end) {
			n.log("the run's time is up: %d scheduled faults skipped (earlier ones ran long)", len(events)-len(faults))
			break
		}
		what := fmt.Sprintf("%s (node %d)", e.kind, e.node)
		if e.kind == "kill-leader" || e.kind == "pause-leader" || e.kind == "crash-all" || e.kind == "rolling-restart" || e.kind == "misconfig" && e.variant == misconfigForeign || e.kind == "stranger" { // no fixed target
			what = e.kind
		}
		n.active.Store(&what)
		f, err := n.apply(ctx, e)
		n.active.Store(nil)
		if err != nil {
			n.log("nemesis %s: %v", e.kind, err)
			continue
		}
		faults = append(faults, f)
	}
	return faults
}

func (n *nemesis) apply(ctx context.Context, e event) (Fault, error) {
	f := Fault{Kind: e.kind, Node: n.target(e.node), RecoveryMS: -1}
	hold := func() { sleep(ctx, e.length) }
	switch e.kind {
	case "kill", "kill-leader":
		if e.kind == "kill-leader" {
			if l := n.busiestLeader(); l != 0 {
				f.Node = l
			}
		}
		f.StartMS = n.rec.nowMS()
		if err := n.c.Kill(f.Node); err != nil {
			return f, err
		}
		n.log("kill -9 node %d", f.Node)
		hold()
		f.EndMS = n.rec.nowMS()
		if err := n.restart(ctx, f.Node); err != nil {
			return f, err
		}
	case "crash-all":
		f.Node = 0
		f.StartMS = n.rec.nowMS()
		for _, nd := range n.c.Nodes() {
			_ = n.c.Kill(nd.ID)
		}
		n.log("kill -9 every node")
		hold()
		f.EndMS = n.rec.nowMS()
		if err := n.restart(ctx, n.ids()...); err != nil {
			return f, err
		}
	case "pause", "pause-leader":
		if e.kind == "pause-leader" {
			if l := n.busiestLeader(); l != 0 {
				f.Node = l
			}
		}
		f.StartMS = n.rec.nowMS()
		if err := n.c.Pause(f.Node); err != nil {
			return f, err
		}
		n.log("SIGSTOP node %d", f.Node)
		hold()
		f.EndMS = n.rec.nowMS()
		if err := n.c.Resume(f.Node); err != nil {
			return f, err
		}
	case "partition":
		f.Detail = e.cut.String()
		if err := n.setCuts(e.cut.links(n.ids())); err != nil {
			_ = n.setCuts(nil)
			return f, err
		}
		// The fault starts once every cut is in place: writes that slip
		// through while the cuts are being set must not count as recovery.
		f.StartMS = n.rec.nowMS()
		n.log("partition: %s", f.Detail)
		hold()
		f.EndMS = n.rec.nowMS()
		if err := n.setCuts(nil); err != nil {
			return f, err
		}
	case "disk":
		f.Detail = e.disk.String()
		failed := e.disk.stall == 0
		if err := n.hookFault(&f, "disk", e.disk.body(), hold, !failed); err != nil || !failed {
			return f, err
		}
		// A node whose disk failed must fence itself and exit; it comes
		// back with a healthy disk. One that is still up was not fenced
		// (the read-back checks show whether that cost anything).
		if !n.waitExit(ctx, f.Node, fenceTimeout) {
			n.log("node %d is still running %v after its disk failed; killing it", f.Node, fenceTimeout)
			_ = n.c.Kill(f.Node)
		}
		if err := n.restart(ctx, f.Node); err != nil {
			return f, err
		}
	case "clock":
		f.Detail = e.skew.String()
		return f, n.hookFault(&f, "clock", e.skew.body(), hold, true)
	case "coordinator", "participant":
		return f, n.crashAtFailpoint(ctx, &f, e.crash, hold)
	case "lose":
		return f, n.lose(ctx, &f)
	case "rolling-restart":
		return f, n.rollingRestart(ctx, &f)
	case "replace":
		return f, n.replace(ctx, &f)
	case "misconfig":
		return f, n.misconfig(ctx, &f, e.variant, e.length)
	case "stranger":
		return f, n.stranger(ctx, &f, e.variant == 1, e.length, uint64(e.at))
	case "split", "merge":
		return f, n.resize(f.Node, &f, e.variant, e.kind)
	case "disk-full":
		// The node's disk guard sees 1 MiB free, far below its reserve:
		// it must refuse the writes it leads (NOSPACE: nothing applied)
		// and hand its leaderships away, then take writes again.
		f.Detail = "1 MiB free, below the reserve"
		return f, n.hookFault(&f, "disk", api.FaultDisk{FreeBytes: 1 << 20}, hold, true)
	default:
		return f, fmt.Errorf("unknown nemesis %q", e.kind)
	}
	return f, nil
}

// restartReady bounds the wait for restarted nodes to be ready again
// before the schedule goes on, so the next fault hits a node that is up.
const restartReady = 10 * time.Second

// restart starts the nodes again and waits (bounded) until each is ready;
// a node that is slow to be ready is logged, not an error: recovery is
// measured by the workloads.
func (n *nemesis) restart(ctx context.Context, ids ...uint64) error {
	for _, id := range ids {
		if err := n.c.Restart(id); err != nil {
			return err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, restartReady)
	defer cancel()
	for _, id := range ids {
		if err := n.c.WaitNodeReady(rctx, id); err != nil {
			n.log("node %d not ready %v after its restart: %v", id, restartReady, err)
		}
	}
	return nil
}

// hookFault sets one of f.Node's fault hooks for the fault's length, then
// heals it unless heal is false (the node is expected to die of it).
func (n *nemesis) hookFault(f *Fault, hook string, body any, hold func(), heal bool) error {
	addr := n.c.Node(f.Node).HTTPAddr
	if err := putFault(addr, hook, body); err != nil {
		return err
	}
	f.StartMS = n.rec.nowMS() // once the hook is in place
	n.log("node %d: %s %s", f.Node, hook, f.Detail)
	hold()
	f.EndMS = n.rec.nowMS()
	if !heal {
		return nil
	}
	return putFault(addr, hook, map[string]any{})
}

// fenceTimeout bounds how long a node with a failed disk may take to exit.
const fenceTimeout = 15 * time.Second

// waitExit polls until node's process has exited; false if it is still
// running after d.
func (n *nemesis) waitExit(ctx context.Context, node uint64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for n.c.Running(node) {
		if time.Now().After(deadline) || !sleep(ctx, 20*time.Millisecond) {
			return false
		}
	}
	return true
}

func (n *nemesis) ids() []uint64 {
	var ids []uint64
	for _, nd := range n.c.Nodes() {
		if !n.retired[nd.ID] {
			ids = append(ids, nd.ID)
		}
	}
	return ids
}

// target maps a scheduled node to the node that stands in its place now
// (the replace nemesis retires nodes and adds new ones).
func (n *nemesis) target(id uint64) uint64 {
	for n.retired[id] && n.replacedBy[id] != 0 {
		id = n.replacedBy[id]
	}
	return id
}

// setCuts cuts links (links maps a node to the peers it must not reach;
// nil heals everything): by dropping packets between the hosts with
// --network netns, else through the nodes' fault-injection admin API.
func (n *nemesis) setCuts(links map[uint64][]uint64) error {
	if n.net != nil {
		if err := n.net.Heal(); err != nil {
			return err
		}
		for from, tos := range links {
			for _, to := range tos {
				if err := n.net.Cut(from, to); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var errs []error
	for _, nd := range n.c.Nodes() {
		if err := setCut(nd.HTTPAddr, links[nd.ID]); err != nil {
			errs = append(errs, fmt.Errorf("node %d: %w", nd.ID, err))
		}
	}
	return errors.Join(errs...)
}

func setCut(httpAddr string, to []uint64) error {
	return putFault(httpAddr, "cut", api.FaultCut{Nodes: to})
}

// putFault sets one of a node's fault hooks (PUT /v1/fault/KIND).
func putFault(httpAddr, kind string, v any) error {
	body, _ := json.Marshal(v)
	req, err := http.NewRequest(http.MethodPut, adminURL(httpAddr, "/v1/fault/"+kind), bytes.NewReader(body))
	if err != nil {
		return err
	}
	cl := adminClient(2 * time.Second)
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fault hook answered %s (is the node running with --fault-injection?)", resp.Status)
	}
	return nil
}

// hurtsFrom is when a fault starts making partitions unavailable: a killed
// or paused node's leaderships die at once; after a crash of every node
// nothing can recover before the restart.
func hurtsFrom(f Fault) int64 {
	if f.Kind == "crash-all" {
		return f.EndMS
	}
	return f.StartMS
}

// busiestLeader asks a running node which node leads most partitions.
func (n *nemesis) busiestLeader() uint64 {
	cl := adminClient(time.Second)
	for _, nd := range n.c.Nodes() {
		if !n.c.Running(nd.ID) {
			continue
		}
		resp, err := cl.Get(adminURL(nd.HTTPAddr, "/v1/status"))
		if err != nil {
			continue
		}
		var st api.StatusJSON
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			continue
		}
		count := map[uint64]int{}
		var best uint64
		for _, p := range st.Partitions {
			if p.Leader != 0 {
				count[p.Leader]++
				if best == 0 || count[p.Leader] > count[best] {
					best = p.Leader
				}
			}
		}
		return best
	}
	return 0
}
