package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/diskguard"
	"github.com/kintsu/kintsu/internal/edge"
	"github.com/kintsu/kintsu/internal/ring"
)

// Config configures a node. Flags of `kintsu server` map onto it.
type Config struct {
	NodeID   uint64
	DataDir  string
	RESPAddr string // client listener
	PeerAddr string // gRPC listener for peers; must match this node's entry in InitialCluster
	HTTPAddr string // admin listener
	// The addresses others use to reach this node, when not those it
	// listens on (a container, NAT, a listener on 0.0.0.0): announced in
	// the cluster metadata, so CLUSTER SLOTS/SHARDS/NODES, MOVED, the
	// admin API's status and joins give them. Empty: the listen address,
	// its host taken from the peer address when it binds every interface
	// (advertise.go).
	AdvertiseRESPAddr, AdvertisePeerAddr, AdvertiseHTTPAddr string
	// CertsDir holds the cluster's CA and this node's certificate (package
	// pki): every port then speaks TLS, peers mutual TLS. Empty means
	// plaintext everywhere, which `kintsu server` allows only with
	// --insecure (in-process tests use it as is).
	CertsDir string
	// InitialCluster maps every initial node id to its peer address. Every
	// initial node must be given the same map.
	InitialCluster map[uint64]string
	// Join is a member's peer address: the node joins that running cluster
	// as a new member instead of bootstrapping (InitialCluster stays empty;
	// the cluster's shape comes from the member). JoinTimeout bounds the
	// attempt (default 30s).
	Join        string
	JoinTimeout time.Duration
	// Partitions, Replicas and VNodes shape placement (see package ring);
	// fixed when the cluster is bootstrapped.
	Partitions, Replicas, VNodes int
	// TickInterval and ElectionTicks tune failure detection: a dead leader
	// is replaced after about ElectionTicks..2*ElectionTicks ticks.
	TickInterval  time.Duration
	ElectionTicks int
	// EmptyDirCheckTimeout bounds how long a node starting with an empty
	// data dir waits for its peers to say whether it ran in the cluster
	// before (see lostdisk.go). Default 1s; negative skips the check.
	EmptyDirCheckTimeout time.Duration
	// LeaderBalanceInterval is how often the node considers handing one of
	// its leaderships to a replica node that leads fewer partitions.
	// Default 5s; negative disables balancing.
	LeaderBalanceInterval time.Duration
	// SplitSize: a partition whose data on disk passes it splits by
	// itself (control/splitpolicy.go); 0: only on command. It matters on
	// the metadata leader, and should be the same on every node.
	SplitSize uint64
	// SplitLoad: a partition applying more writes per second than this,
	// for a few heartbeats in a row, splits at the median slot of its
	// recent writes (control/loadpolicy.go); 0: never by load. Like
	// SplitSize, it matters on the metadata leader.
	SplitLoad float64
	// SnapshotRate is the bytes per second this node sends snapshots at,
	// all together (moving and repairing replicas): 0 means
	// transport.DefaultSnapshotRate, negative unlimited.
	SnapshotRate int64
	// LeaderLoad moves leaderships for measured write load as well as
	// count (control/leaderload.go); off by default, not yet steady.
	LeaderLoad bool
	// HeartbeatInterval is how often the node heartbeats into the cluster
	// metadata (default 1s); a node silent for 3 intervals is suspect.
	HeartbeatInterval time.Duration
	// DeadTimeout is how long a node may stay silent before it is dead
	// and its replicas are rebuilt elsewhere. Default 60s.
	DeadTimeout time.Duration
	// RequestTimeout bounds every client request. Default 5s.
	RequestTimeout time.Duration
	// Limits bound what clients can make the node hold (limits.go).
	Limits edge.ClientLimits
	// ReadLeases lets leaders serve linearizable reads on a read lease
	// instead of a quorum round per read (raftstore/lease.go).
	ReadLeases bool
	// UnsafeLongLeases makes read leases outlive their leader: a planted
	// bug, test-only.
	UnsafeLongLeases bool
	// UnsafeStaleReads serves reads from any replica without ReadIndex.
	// Test-only: it exists to prove the linearizability checker can fail.
	UnsafeStaleReads bool
	// UnsafeCASOnPropose checks SET ... IFEQ when the leader receives it
	// instead of when it is applied: a planted lost-update bug. Test-only.
	UnsafeCASOnPropose bool
	// UnsafeSkipIntentCheck lets reads ignore transactions' write locks,
	// so they can see half of a transaction (a planted bug, see
	// txn.PlantReadsIgnoreIntents). Test-only.
	UnsafeSkipIntentCheck bool
	// UnsafeLostElement answers one RPUSH in sixteen as applied without
	// proposing it: a planted lost-element bug. Test-only.
	UnsafeLostElement bool
	// UnsafeLazyFsync > 0 makes the node's disk lie about fsync: log
	// writes reach the file only every UnsafeLazyFsync, so writes are
	// acknowledged before they are durable and a SIGKILL loses them (a
	// planted ack-before-fsync bug, package faultfs). Test-only.
	UnsafeLazyFsync time.Duration
	// FaultInjection enables the admin API's fault hooks (PUT
	// /v1/fault/cut, /clock, /disk, /crash) and opens storage through the
	// fault-injecting file system. Testing only (kintsu chaos).
	FaultInjection bool
	// DiskReserve is the free space of the data dir's volume below which
	// the node refuses writes and hands its leaderships away (disk.go).
	// Zero value: the smaller of 1 GiB and 5% of the volume.
	DiskReserve diskguard.Reserve
	// StallTimeout: a storage write (a cycle of the replication loop)
	// running longer than this fences the node. Default 30s.
	StallTimeout time.Duration
	// RequirePassFile names a file holding the default user's password
	// (Redis's requirepass; never on the command line). See users.go.
	RequirePassFile string
	// ProtectedMode refuses clients (and admin calls) from other hosts
	// while the default user has no password. The flag defaults to on.
	ProtectedMode bool
	// EnablePprof serves /debug/pprof on the admin API (behind its
	// credentials check).
	EnablePprof bool
	// ACLRefresh is how often a node polls the cluster's users for
	// changes made through other nodes (default 1s): the staleness bound
	// of permission checks, with one request timeout.
	ACLRefresh time.Duration
	// TruncateAfter/TruncateKeep override log truncation (tests make them
	// small to force snapshot catch-up). 0 = engine defaults.
	TruncateAfter, TruncateKeep uint64
	Logger                      *slog.Logger
	// Listeners, when set, are used instead of listening on the addresses
	// (tests open them on port 0 first, so no port can be taken between
	// choosing and binding it). The addresses must still be given.
	Listeners *Listeners
	// crash replaces how a failpoint ends the process (tests record it
	// instead); nil = killSelf.
	crash func()
	// noLevel creates the cluster with no level recorded, as one created
	// before levels (tests of the upgrade path; control.Shape.NoLevel).
	noLevel bool
	// preLevels starts the node answering the level call as a build from
	// before levels (Node.preLevels).
	preLevels bool
}

// Listeners are pre-opened listeners for a node.
type Listeners struct{ Peer, RESP, HTTP net.Listener }

// EnsureDefaults fills zero fields with defaults.
func (c *Config) EnsureDefaults() {
	rc := ring.Config{Partitions: c.Partitions, Replicas: c.Replicas, VNodes: c.VNodes}
	rc.EnsureDefaults()
	c.Partitions, c.Replicas, c.VNodes = rc.Partitions, rc.Replicas, rc.VNodes
	if c.TickInterval == 0 {
		c.TickInterval = 50 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.EmptyDirCheckTimeout == 0 {
		c.EmptyDirCheckTimeout = time.Second
	}
	if c.LeaderBalanceInterval == 0 {
		c.LeaderBalanceInterval = control.DefaultBalanceEvery
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = 30 * time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = time.Second
	}
	if c.DeadTimeout == 0 {
		c.DeadTimeout = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ACLRefresh == 0 {
		c.ACLRefresh = time.Second
	}
	c.Limits.EnsureDefaults()
}

func (c *Config) ringConfig() ring.Config {
	rc := ring.Config{Partitions: c.Partitions, Replicas: c.Replicas, VNodes: c.VNodes}
	rc.EnsureDefaults()
	return rc
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeID == 0 {
		errs = append(errs, errors.New("--id must be a positive integer"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required"))
	}
	for name, a := range map[string]string{"--resp-addr": c.RESPAddr, "--peer-addr": c.PeerAddr, "--http-addr": c.HTTPAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want host:port", name, a))
		}
	}
	errs = append(errs, c.validateAdvertise()...)
	switch {
	case c.Join != "":
		if len(c.InitialCluster) > 0 {
			errs = append(errs, errors.New("--join and --initial-cluster exclude each other: a joining node learns the cluster from the member it joins"))
		}
		if _, _, err := net.SplitHostPort(c.Join); err != nil {
			errs = append(errs, fmt.Errorf("--join %q: want a member's host:peer-port", c.Join))
		}
	case len(c.InitialCluster) == 0:
		errs = append(errs, errors.New("--initial-cluster is required (or --join to add this node to a running cluster)"))
	default:
		errs = append(errs, c.validateInitial()...)
	}
	if err := c.ringConfig().Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ElectionTicks < 2 {
		errs = append(errs, errors.New("election ticks must be at least 2"))
	}
	if c.HeartbeatInterval < 0 || c.DeadTimeout < 0 {
		errs = append(errs, errors.New("--heartbeat-interval and --dead-timeout must be positive"))
	} else if c.DeadTimeout <= control.SuspectAfter*c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("--dead-timeout %v must exceed %d heartbeat intervals (%v)", c.DeadTimeout, control.SuspectAfter, control.SuspectAfter*c.HeartbeatInterval))
	}
	errs = append(errs, c.Limits.Validate()...)
	return errors.Join(errs...)
}

func (c *Config) validateInitial() []error {
	addr, ok := c.InitialCluster[c.NodeID]
	switch {
	case !ok:
		return []error{fmt.Errorf("--initial-cluster has no entry for this node's id %d", c.NodeID)}
	case c.AdvertisePeerAddr != "" && addr != c.AdvertisePeerAddr:
		return []error{fmt.Errorf("--initial-cluster gives node %d the peer address %s but --advertise-peer-addr is %s", c.NodeID, addr, c.AdvertisePeerAddr)}
	case c.AdvertisePeerAddr == "" && !samePeer(addr, c.PeerAddr):
		return []error{fmt.Errorf("--initial-cluster gives node %d the peer address %s but --peer-addr is %s (give --advertise-peer-addr when others reach this node at another address)", c.NodeID, addr, c.PeerAddr)}
	}
	return nil
}

// ParseInitialCluster parses "1=host:port,2=host:port".
func ParseInitialCluster(s string) (map[uint64]string, error) {
	out := map[uint64]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	seen := map[string]uint64{}
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("initial cluster entry %q: want id=host:port", part)
		}
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("initial cluster entry %q: id must be a positive integer", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("initial cluster entry %q: address must be host:port", part)
		}
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("initial cluster names node %d twice", n)
		}
		if other, dup := seen[addr]; dup {
			return nil, fmt.Errorf("initial cluster gives nodes %d and %d the same address %s", other, n, addr)
		}
		out[n], seen[addr] = addr, n
	}
	return out, nil
}
