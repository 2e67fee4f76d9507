package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kintsu/kintsu/internal/admin"
	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/clock"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/edge"
	"github.com/kintsu/kintsu/internal/events"
	"github.com/kintsu/kintsu/internal/faultfs"
	"github.com/kintsu/kintsu/internal/metrics"
	"github.com/kintsu/kintsu/internal/raftlog"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/route"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/storage"
	"github.com/kintsu/kintsu/internal/transport"
	"github.com/kintsu/kintsu/internal/txn"
)

// Node is a running Kintsu server.
type Node struct {
	cfg     Config
	log     *slog.Logger
	db      *pebble.DB
	rlog    *raftlog.Log // the raft logs of every replica here
	tr      *transport.Transport
	eng     *raftstore.Engine
	metrics *metrics.Metrics
	clock   *clock.Clock
	disk    *faultfs.FS // nil unless fault injection or a planted bug needs it
	layout  *control.Layout
	router  *route.Router
	txns    *txn.Coordinator
	front   *edge.Server
	admin   *admin.API
	events  *events.Recorder // the node's recent events (console.go)
	clocks  peerClocks       // the peers' clock offsets (clockskew.go)
	scrapes scrapeCache      // readings /metrics reuses (metricsview.go)
	slots   *ring.SlotTable  // slot -> partition (the cluster's equal ranges)
	// crashAt is the armed crash failpoint (nil for none; see failpoint.go).
	crashAt atomic.Pointer[string]
	crash   func() // how a failpoint crashes the node: killSelf (tests replace it)
	// joined: the node joined a running cluster (--join), now or before.
	joined bool
	health nodeHealth   // health.go
	fence  *diskFence   // disk.go
	quar   *quarantiner // quarantine.go
	// The control plane's parts that other parts call (wiring.go).
	cmap     *control.Map // the node's view of membership
	registry *control.Registry
	members  *control.Members
	place    *control.Placement
	balancer *control.Balancer

	peerLn, respLn, httpLn net.Listener
	httpSrv                *http.Server

	stopOnce sync.Once
	done     chan struct{} // closed when the node has stopped
	bg       sync.WaitGroup
	// ctx ends when the node stops; background work derives from it.
	ctx    context.Context
	cancel context.CancelFunc
	// preLevels makes the node answer the level call as a build from
	// before levels does, "unknown method" (tests of the upgrade path).
	preLevels atomic.Bool
}

// Start opens storage, bootstraps or recovers the node's replicas and
// starts serving. The returned node runs until Stop.
func Start(cfg Config) (*Node, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rec := events.New(cfg.NodeID, eventsKept)
	n := &Node{cfg: cfg, log: slog.New(rec.Tee(cfg.Logger.Handler())).With("node", cfg.NodeID), events: rec,
		metrics: metrics.New(), clock: clock.New(), crash: cfg.crash, done: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if n.crash == nil {
		n.crash = killSelf
	}
	var err error
	ok := false
	defer func() {
		if !ok {
			n.closeAll()
		}
	}()
	// Listeners first: a port in use fails the start before any data is touched.
	if ls := cfg.Listeners; ls != nil {
		n.peerLn, n.respLn, n.httpLn = ls.Peer, ls.RESP, ls.HTTP
	} else {
		if n.peerLn, err = net.Listen("tcp", cfg.PeerAddr); err != nil {
			return nil, fmt.Errorf("peer listener (--peer-addr): %w", err)
		}
		if n.respLn, err = net.Listen("tcp", cfg.RESPAddr); err != nil {
			return nil, fmt.Errorf("client listener (--resp-addr): %w", err)
		}
		if n.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("admin listener (--http-addr): %w", err)
		}
	}
	var fs vfs.FS
	if cfg.FaultInjection || cfg.UnsafeLazyFsync > 0 {
		n.disk = faultfs.New(vfs.Default, faultfs.Options{LazyWAL: cfg.UnsafeLazyFsync})
		fs = n.disk
	}
	fence := &diskFence{}
	n.fence, n.quar = fence, newQuarantiner(fence, n.log, fs, cfg.DataDir, cfg.Replicas)
	// The raft log first: its groups are the replicas a corrupt file met
	// by Pebble's first compactions may hold (quarantine.go).
	if n.rlog, err = raftstore.OpenLog(fs, cfg.DataDir, 0, n.log); err != nil {
		n.closeDisk()
		return nil, err
	}
	n.quar.setLogGroups(n.rlog.Groups())
	if n.db, err = storage.Open(storage.Options{Dir: cfg.DataDir, FS: fs, Logger: n.log, OnCorruption: fence.onCorruption, Isolate: n.quar.isolate}); err != nil {
		n.closeDisk()
		return nil, err
	}
	n.tr = transport.New(cfg.NodeID, n.log)
	if cfg.SnapshotRate != 0 {
		n.tr.SetSnapshotRate(max(cfg.SnapshotRate, 0))
	}
	if err := n.setupTLS(); err != nil {
		return nil, err
	}
	if cfg.Join != "" {
		if err := n.resolveJoin(); err != nil {
			return nil, err
		}
		cfg = n.cfg
	}
	if n.layout, err = control.NewLayout(control.Shape{NodeID: cfg.NodeID, InitialCluster: cfg.InitialCluster, Ring: cfg.ringConfig(), NoLevel: cfg.noLevel}); err != nil {
		return nil, err
	}
	n.slots = ring.EqualSlotTable(cfg.Partitions)
	n.layout.Ident.Joined = n.joined
	n.tr.SetClusterID(n.layout.Ident.ClusterID)
	fresh, err := n.checkIdentity()
	if err != nil {
		return nil, err
	}
	for id, addr := range cfg.InitialCluster {
		n.tr.SetPeer(id, addr)
	}
	if fresh && !n.joined && cfg.EmptyDirCheckTimeout > 0 {
		if err := n.refuseIfReplaced(); err != nil {
			return nil, err
		}
	}
	n.eng, err = raftstore.New(raftstore.Config{
		NodeID:           cfg.NodeID,
		TickInterval:     cfg.TickInterval,
		ElectionTicks:    cfg.ElectionTicks,
		TruncateAfter:    cfg.TruncateAfter,
		TruncateKeep:     cfg.TruncateKeep,
		UnsafeStaleReads: cfg.UnsafeStaleReads,
		ReadLeases:       cfg.ReadLeases || cfg.UnsafeLongLeases,
		UnsafeLongLeases: cfg.UnsafeLongLeases,
		StallTimeout:     cfg.StallTimeout,
		DataDir:          cfg.DataDir,
		FS:               fs,
		// The map is built before the engine starts and before peers'
		// messages are served; nil only while the node starts.
		IsMember:   func(node uint64) bool { return n.cmap == nil || n.cmap.Current().IsMember(node) },
		Apply:      applyEntry,
		Classify:   statemachine.Classify,
		KeySlot:    ring.Slot,
		MaxGroup:   statemachine.MetaGroup,
		Logger:     n.log,
		Metrics:    n.metrics,
		Clock:      n.clock,
		Quarantine: n.quar.set,
	}, n.db, n.rlog, n.tr)
	if err != nil {
		return nil, err
	}
	fence.attach(n.eng)
	n.quar.setLogGroups(n.rlog.Groups()) // with a legacy dir's logs, migrated
	eng := n.eng
	n.metrics.WatchRaftLog(
		func() float64 { s, _, _ := eng.LogStats(); return float64(s) },
		func() float64 { _, b, _ := eng.LogStats(); return float64(b) },
		func() float64 { _, _, p := eng.LogStats(); return float64(p) },
	)
	if err := n.addReplicas(fresh); err != nil {
		return nil, err
	}
	if err := n.holdUnknown(); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	if err := n.eng.CheckDurable(); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	if fresh {
		// The identity is written last: a crash before this point leaves a
		// data dir that bootstraps again from scratch, identically.
		if err := n.writeIdentity(); err != nil {
			return nil, err
		}
	}
	if cfg.UnsafeSkipIntentCheck {
		txn.PlantReadsIgnoreIntents()
	}
	n.newMap(fresh && !n.joined && !cfg.noLevel)
	n.preLevels.Store(cfg.preLevels)
	if lvl := n.cmap.Current().Level; lvl > api.Level {
		// The cluster uses features this build lacks (control/levels.go):
		// its replicas would apply their commands as unknown.
		return nil, fmt.Errorf("data dir %s: the cluster is at level %d and this build is of level %d: run the cluster's build or a newer one", cfg.DataDir, lvl, api.Level)
	}
	n.router = route.New(route.Config{
		NodeID: cfg.NodeID, Transport: n.tr, Members: n.holders, Metrics: n.metrics, Logger: n.log,
		Failpoint: n.failpoint, FaultInjection: cfg.FaultInjection,
		UnsafeStaleReads: cfg.UnsafeStaleReads, UnsafeCASOnPropose: cfg.UnsafeCASOnPropose, UnsafeLostElement: cfg.UnsafeLostElement,
	}, n.eng)
	n.txns = n.newCoordinator()
	n.router.SetResolver(n.txns.Resolver())
	loops := n.newControl()
	pwHash, err := n.passwordHash()
	if err != nil {
		return nil, err
	}
	n.front = edge.New(n.ctx, edge.Config{
		NodeID: cfg.NodeID, ClusterID: n.layout.Ident.ClusterID, RESPAddr: cmp.Or(cfg.AdvertiseRESPAddr, cfg.RESPAddr),
		Partitions: cfg.Partitions, Replicas: cfg.Replicas, RequestTimeout: cfg.RequestTimeout,
		Metrics: n.metrics, Router: n.router, Txns: n.txns, View: nodeView{n}, Peers: peers{n},
		ProtectedMode: cfg.ProtectedMode, DefaultPasswordHash: pwHash,
		Logger: n.log, Limits: cfg.Limits.Enforced(n.usedMemory),
	})
	loops = append(loops, func(ctx context.Context) { n.front.WatchUsers(ctx, cfg.ACLRefresh) })
	if pwHash != "" {
		loops = append(loops, n.applyPasswordFile(pwHash))
	}
	n.tr.SetHandlers(n.eng, n.handleCall)
	n.tr.Serve(n.peerLn)
	// From here a corrupt file is decided over the hosted replicas; before,
	// over the replicas being loaded (quarantine.go).
	n.quar.serving.Store(true)
	n.eng.Start()
	n.metrics.Registry.MustRegister(nodeCollector{n}) // metricsview.go
	n.admin = n.newAdmin()
	n.httpSrv = &http.Server{Handler: n.admin.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = n.httpSrv.Serve(n.httpLn) }()
	go n.front.Serve(n.respLn)
	for _, loop := range loops {
		n.run(loop)
	}
	n.run(n.watchDisk(fs))
	n.run(n.runQuarantine)
	// Back: peers told that this node was stopping may hand it leaderships
	// again (away.go). Best effort, a few seconds at most.
	n.run(func(ctx context.Context) { n.tellPeersAway(ctx, false, 5*time.Second) })
	ok = true
	n.log.Info("node started", "cluster", n.layout.Ident.ClusterID, "resp", cfg.RESPAddr, "peer", cfg.PeerAddr, "http", cfg.HTTPAddr,
		"advertised_resp", cfg.AdvertisedRESP(), "advertised_peer", cfg.AdvertisedPeer(), "advertised_http", cfg.AdvertisedHTTP(), "fresh", fresh)
	return n, nil
}

// checkIdentity compares the data dir's identity with the flags. It
// returns true for an empty data dir.
func (n *Node) checkIdentity() (bool, error) {
	b, ok, err := storage.Get(n.db, storage.IdentKey)
	if err != nil {
		return false, err
	}
	if !ok {
		return true, nil
	}
	var stored api.Identity
	if err := json.Unmarshal(b, &stored); err != nil {
		return false, fmt.Errorf("data dir %s: unreadable identity: %w", n.cfg.DataDir, err)
	}
	if c := control.Contradictions(stored, n.layout.Ident); len(c) > 0 {
		return false, fmt.Errorf("data dir %s belongs to cluster %s and the flags contradict it: %s. Start with the flags it was created with, or use an empty --data-dir for a new node",
			n.cfg.DataDir, stored.ClusterID, strings.Join(c, "; "))
	}
	return false, nil
}

func (n *Node) writeIdentity() error {
	b, err := json.Marshal(n.layout.Ident)
	if err != nil {
		return err
	}
	return n.db.Set(storage.IdentKey, b, pebble.Sync)
}

// addReplicas creates (fresh) the replicas the initial placement gives
// this node, then loads every replica on disk: on a restart, those are
// the ones membership changes left here, whatever the initial placement.
func (n *Node) addReplicas(fresh bool) error {
	if !fresh || n.joined {
		return n.eng.LoadAll()
	}
	if slices.Contains(n.layout.MetaNodes, n.cfg.NodeID) {
		if err := n.eng.AddReplica(MetaGroup, n.layout.Bootstrap(MetaGroup, n.layout.MetaNodes, n.cfg.InitialCluster)); err != nil {
			return err
		}
	}
	for _, p := range n.layout.Partitions {
		if slices.Contains(p.Replicas, n.cfg.NodeID) {
			if err := n.eng.AddReplica(uint64(p.ID), n.layout.Bootstrap(uint64(p.ID), p.Replicas, nil)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Done is closed when the node has stopped, or when its engine failed and
// the node must be stopped (Err says why).
func (n *Node) Done() <-chan struct{} { return n.done }

// Failed is closed when the replication engine stopped on a fatal error
// (a storage failure): the node no longer acknowledges anything and should
// exit.
func (n *Node) Failed() <-chan struct{} { return n.eng.Done() }

// Err returns the fatal error that stopped the node's engine, if any.
func (n *Node) Err() error { return n.eng.Err() }

// transferTimeout bounds the leadership hand-off at shutdown: a couple of
// election timeouts are enough when followers are up.
const transferTimeout = 3 * time.Second

// stopLinger is how long a stopping node keeps serving once it leads
// nothing, for the clients that still send to it to be redirected: the
// edge redirects to a new leader once it has held for a second
// (edge.movedSettle), then a second for the clients to follow.
const stopLinger = 2 * time.Second

// Stop shuts the node down gracefully: it stops accepting clients, hands
// leadership of its partitions to up-to-date followers (bounded by ctx),
// lets in-flight requests finish, then closes everything.
func (n *Node) Stop(ctx context.Context) error {
	var err error
	n.stopOnce.Do(func() {
		// Clients keep being served while the leaderships move: the
		// listener stays open and requests are forwarded, or answered
		// MOVED for cluster clients, which so learn the new leaders
		// before this node goes (a restart shows them no error). /readyz
		// says it is stopping, so load balancers send no one new.
		n.health.stopping.Store(true)
		n.tellPeersAway(ctx, true, awayNoticeTimeout) // away.go
		// Bounded: when every node is stopping, transfers cannot finish.
		tctx, cancel := context.WithTimeout(ctx, transferTimeout)
		if terr := n.eng.TransferLeadership(tctx); terr != nil {
			n.log.Warn("leadership transfer incomplete", "err", terr)
		}
		cancel()
		n.front.Linger(ctx, stopLinger)
		// A leadership won back while lingering (a transferee that lost
		// its election) goes again, so the partition need not wait out an
		// election timeout once this node is gone.
		tctx, cancel = context.WithTimeout(ctx, transferTimeout/3)
		_ = n.eng.TransferLeadership(tctx)
		cancel()
		n.front.StopAccepting()
		n.front.Drain(ctx)
		err = n.closeAll()
		close(n.done)
	})
	return err
}

func (n *Node) closeAll() error {
	n.cancel()
	if n.httpSrv != nil {
		// Shutdown waits for running handlers: a backup stream reads a
		// snapshot of the database, which must end before it closes. The
		// streams stop at once (n.cancel above); the bound is for the rest.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.httpSrv.Shutdown(ctx); err != nil {
			_ = n.httpSrv.Close()
		}
		cancel()
	}
	// Order matters: everything that may read or write storage (client
	// connections, peers' forwarded calls, background work) has finished
	// before the engine stops and the database closes. n.cancel above makes
	// their retries give up at once.
	if n.front != nil {
		n.front.CloseAll()
	}
	if n.tr != nil {
		n.tr.Stop()
	}
	n.bg.Wait()
	if n.eng != nil {
		n.eng.Stop()
	}
	for _, l := range []net.Listener{n.respLn, n.httpLn, n.peerLn} {
		if l != nil {
			_ = l.Close()
		}
	}
	if n.rlog != nil && (n.eng == nil || !n.eng.Stalled()) {
		// A stalled loop may be stuck inside a commit that holds the log's
		// lock: then the log is left to the process's exit.
		if err := n.rlog.Close(); err != nil && !errors.Is(err, raftlog.ErrClosed) {
			n.log.Error("closing the raft log", "err", err)
		}
	}
	if n.db != nil {
		if err := n.db.Close(); err != nil && !errors.Is(err, pebble.ErrClosed) {
			n.closeDisk()
			return err
		}
	}
	return n.closeDisk()
}

// closeDisk writes through what the fault-injecting file system holds.
func (n *Node) closeDisk() error {
	if n.disk == nil {
		return nil
	}
	return n.disk.Close()
}

// applyEntry applies a committed command to the node's state machines.
func applyEntry(group uint64, w *raftstore.Writer, spec *command.Spec, args [][]byte, out []byte) ([]byte, error) {
	return statemachine.Apply(group, w, spec, args, out)
}
