package edge

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/ring"
)

// The Redis Cluster protocol, so cluster-aware clients (go-redis
// ClusterClient, redis-cli -c, redis-benchmark --cluster, redis-py
// RedisCluster) route each command straight to its partition's leader.
//
// Kintsu's partitions are Redis Cluster's shards: a partition owns one
// contiguous slot range, its raft leader is the shard's master and its
// followers are the shard's replicas. A node leads some partitions and
// follows others, which CLUSTER SLOTS and CLUSTER SHARDS express exactly;
// CLUSTER NODES, whose format gives a node one role, lists every node as a
// master of the slots it leads.
//
// The topology is a hint, as in Redis: a client that follows a stale one
// is forwarded or redirected, never served wrongly. A partition whose
// leader is unknown, or whose leader's client address is not yet known, is
// reported as led by the answering node, which forwards.
//
// Redirects: a plain client is forwarded to the leader, as always. A
// connection that asked for the topology (CLUSTER SLOTS, SHARDS or NODES)
// or said READONLY or READWRITE speaks the cluster protocol, so a
// single-partition command it sends to a node that does not lead the
// partition is answered -MOVED, which such clients follow and then refresh
// their topology. Commands whose keys span partitions run as transactions
// on any node and are never redirected.

// NodeName is a node's 40-character name in the cluster protocol:
// stable for the node's life, distinct across clusters.
func NodeName(clusterID string, node uint64) string {
	sum := sha1.Sum(fmt.Appendf(nil, "kintsu/%s/%d", clusterID, node))
	return hex.EncodeToString(sum[:])
}

// clusterNode is a node as cluster-aware clients see it.
type clusterNode struct {
	id     uint64
	name   string
	ip     string
	port   int
	cport  int
	health string // online or failed
	known  bool   // its client address is known
}

// shard is one partition as a cluster shard.
type shard struct {
	start, end uint16
	master     *clusterNode
	replicas   []*clusterNode
}

// topology is the cluster as the answering node sees it now.
type topology struct {
	self   *clusterNode
	nodes  []*clusterNode // by id
	byID   map[uint64]*clusterNode
	shards []shard
}

// hostPort splits addr; an unspecified host (":7001", "0.0.0.0:7001")
// is replaced by fallback.
func hostPort(addr, fallback string) (string, int, bool) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, false
	}
	if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
		h = fallback
	}
	return h, port, h != ""
}

// clientEndpoint is where clients reach the node of rec. localIP names
// this node when its listener is bound to all addresses; another node so
// bound is named by its peer address's host.
func (f *Server) clientEndpoint(rec api.NodeRecord, localIP string) (string, int, bool) {
	if rec.ID == f.cfg.NodeID {
		return hostPort(f.cfg.RESPAddr, localIP)
	}
	peerHost, _, _ := hostPort(rec.PeerAddr, "")
	return hostPort(rec.RESPAddr, peerHost)
}

func localIPOf(local net.Addr) string {
	if a, ok := local.(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return "127.0.0.1"
}

// topology builds the cluster view. local is the client connection's local
// address: it names this node when its listener is bound to all addresses.
func (f *Server) topology(local net.Addr) *topology {
	t := &topology{byID: map[uint64]*clusterNode{}}
	localIP := localIPOf(local)
	for _, rec := range f.cfg.View.NodeRecords() {
		if rec.State == api.NodeRemoved {
			continue
		}
		cn := &clusterNode{id: rec.ID, name: NodeName(f.cfg.ClusterID, rec.ID), health: "online"}
		cn.ip, cn.port, cn.known = f.clientEndpoint(rec, localIP)
		_, cport, _ := hostPort(rec.PeerAddr, "")
		cn.cport = cport
		if !api.Serves(rec.State) {
			cn.health = "failed"
		}
		t.nodes = append(t.nodes, cn)
		t.byID[rec.ID] = cn
	}
	t.self = t.byID[f.cfg.NodeID]
	going := f.lingering.Load() // named neither primary nor replica
	var fallback *clusterNode   // this node, or (its own record gone) any known one
	if t.self != nil && t.self.known {
		fallback = t.self
	} else {
		for _, cn := range t.nodes {
			if cn.known {
				fallback = cn
				break
			}
		}
	}
	for _, p := range f.cfg.View.Partitions() {
		sh := shard{start: p.SlotStart, end: p.SlotEnd}
		if l := t.byID[f.redirectTarget(uint64(p.ID))]; l != nil && l.known {
			sh.master = l
		} else if sh.master = fallback; sh.master == nil {
			continue // no node has a client address to name
		}
		for _, r := range f.cfg.View.GroupNodes(uint64(p.ID)) {
			if c := t.byID[r]; c != nil && c != sh.master && c.known && !(c == t.self && going) {
				sh.replicas = append(sh.replicas, c)
			}
		}
		t.shards = append(t.shards, sh)
	}
	return t
}

func appendSlotsNode(b []byte, c *clusterNode) []byte {
	b = resp.AppendArrayHeader(b, 4)
	b = resp.AppendBulkString(b, c.ip)
	b = resp.AppendInt(b, int64(c.port))
	b = resp.AppendBulkString(b, c.name)
	return resp.AppendArrayHeader(b, 0)
}

// slotsReply answers CLUSTER SLOTS: one entry per partition.
func (t *topology) slotsReply() []byte {
	b := resp.AppendArrayHeader(nil, len(t.shards))
	for _, sh := range t.shards {
		b = resp.AppendArrayHeader(b, 3+len(sh.replicas))
		b = resp.AppendInt(b, int64(sh.start))
		b = resp.AppendInt(b, int64(sh.end))
		b = appendSlotsNode(b, sh.master)
		for _, r := range sh.replicas {
			b = appendSlotsNode(b, r)
		}
	}
	return b
}

func appendShardNode(b []byte, c *clusterNode, role string) []byte {
	b = resp.AppendArrayHeader(b, 14)
	for _, kvp := range [][2]string{{"id", c.name}, {"ip", c.ip}, {"endpoint", c.ip}, {"role", role}} {
		b = resp.AppendBulkString(b, kvp[0])
		b = resp.AppendBulkString(b, kvp[1])
	}
	b = resp.AppendBulkString(b, "port")
	b = resp.AppendInt(b, int64(c.port))
	b = resp.AppendBulkString(b, "replication-offset")
	b = resp.AppendInt(b, 0)
	b = resp.AppendBulkString(b, "health")
	return resp.AppendBulkString(b, c.health)
}

// shardsReply answers CLUSTER SHARDS: one shard per partition.
func (t *topology) shardsReply() []byte {
	b := resp.AppendArrayHeader(nil, len(t.shards))
	for _, sh := range t.shards {
		b = resp.AppendArrayHeader(b, 4)
		b = resp.AppendBulkString(b, "slots")
		b = resp.AppendArrayHeader(b, 2)
		b = resp.AppendInt(b, int64(sh.start))
		b = resp.AppendInt(b, int64(sh.end))
		b = resp.AppendBulkString(b, "nodes")
		b = resp.AppendArrayHeader(b, 1+len(sh.replicas))
		b = appendShardNode(b, sh.master, "master")
		for _, r := range sh.replicas {
			b = appendShardNode(b, r, "replica")
		}
	}
	return b
}

// nodesReply answers CLUSTER NODES: every node a master of the slots it
// leads, adjacent ranges merged.
func (t *topology) nodesReply() []byte {
	var sb strings.Builder
	for _, c := range t.nodes {
		if !c.known {
			continue
		}
		flags := "master"
		if c == t.self {
			flags = "myself,master"
		}
		link := "connected"
		if c.health != "online" {
			flags += ",fail"
			link = "disconnected"
		}
		fmt.Fprintf(&sb, "%s %s:%d@%d %s - 0 0 0 %s", c.name, c.ip, c.port, c.cport, flags, link)
		for i := 0; i < len(t.shards); i++ {
			if t.shards[i].master != c {
				continue
			}
			start := t.shards[i].start
			for i+1 < len(t.shards) && t.shards[i+1].master == c {
				i++
			}
			if end := t.shards[i].end; end == start {
				fmt.Fprintf(&sb, " %d", start)
			} else {
				fmt.Fprintf(&sb, " %d-%d", start, end)
			}
		}
		sb.WriteString("\n")
	}
	return resp.AppendBulkString(nil, sb.String())
}

// infoReply answers CLUSTER INFO.
func (t *topology) infoReply(f *Server) []byte {
	ok, size := 0, map[*clusterNode]bool{}
	for _, sh := range t.shards {
		size[sh.master] = true
		if f.cfg.View.LeaderOf(f.slotTable().GroupOf(sh.start)) != 0 {
			ok += int(sh.end-sh.start) + 1
		}
	}
	state := "ok"
	if ok < ring.SlotCount {
		state = "fail"
	}
	known := 0
	for _, c := range t.nodes {
		if c.known {
			known++
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "cluster_enabled:1\r\ncluster_state:%s\r\ncluster_slots_assigned:%d\r\ncluster_slots_ok:%d\r\n", state, ring.SlotCount, ok)
	fmt.Fprintf(&sb, "cluster_slots_pfail:0\r\ncluster_slots_fail:%d\r\ncluster_known_nodes:%d\r\ncluster_size:%d\r\n", ring.SlotCount-ok, known, len(size))
	sb.WriteString("cluster_current_epoch:0\r\ncluster_my_epoch:0\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n")
	return resp.AppendBulkString(nil, sb.String())
}

var clusterHelp = []string{
	"CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"INFO", "    Return information about the cluster.",
	"KEYSLOT <key>", "    Return the hash slot for <key>.",
	"MYID", "    Return the node id.",
	"NODES", "    Return cluster configuration seen by node.",
	"SHARDS", "    Return information about slot range mappings and the nodes serving them.",
	"SLOTS", "    Return information about slots range mappings.",
	"HELP", "    Print this help.",
}

// cmdCluster answers the CLUSTER subcommands cluster-aware clients use.
// Changing the topology by hand (ADDSLOTS, MEET, FAILOVER ...) is refused:
// Kintsu places partitions itself.
func cmdCluster(f *Server, args [][]byte, st *connState) []byte {
	if len(args) < 2 {
		return errArity(args)
	}
	sub := lower(args[1])
	switch sub {
	case "keyslot":
		if len(args) != 3 {
			return errArity([][]byte{[]byte("cluster|keyslot")})
		}
		return resp.AppendInt(nil, int64(ring.Slot(args[2])))
	case "myid":
		return resp.AppendBulkString(nil, NodeName(f.cfg.ClusterID, f.cfg.NodeID))
	case "help":
		return appendHelp(clusterHelp)
	}
	t := f.topology(st.local)
	switch sub {
	case "slots":
		st.clusterAware = true
		return t.slotsReply()
	case "shards":
		st.clusterAware = true
		return t.shardsReply()
	case "nodes":
		st.clusterAware = true
		return t.nodesReply()
	case "info":
		return t.infoReply(f)
	case "addslots", "addslotsrange", "delslots", "delslotsrange", "meet", "forget", "failover", "replicate",
		"reset", "setslot", "flushslots", "set-config-epoch", "bumpepoch":
		return resp.AppendError(nil, "ERR CLUSTER "+strings.ToUpper(sub)+" is not supported: Kintsu places partitions itself; see kintsu ctl")
	}
	return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand '%s'. Try CLUSTER HELP.", args[1]))
}

// cmdReadonly lets the connection read from followers (READONLY) or not
// (READWRITE). Both mark the connection as cluster-aware.
func cmdReadonly(_ *Server, args [][]byte, st *connState) []byte {
	if len(args) != 1 {
		return errArity(args)
	}
	st.clusterAware = true
	st.readonly = lower(args[0]) == "readonly"
	return resp.AppendSimple(nil, "OK")
}

// moved returns the -MOVED redirect for a command of a cluster-aware
// connection bound for group, or nil when this node should serve it: it
// leads the partition, the leader is unknown or changed less than
// movedSettle ago (the router copes; settle.go), or the connection reads
// from followers and this node holds a replica.
func (f *Server) moved(st *connState, c *command.Cmd) []byte {
	if !st.clusterAware && !f.lingering.Load() || len(c.Keys) == 0 {
		return nil
	}
	if st.readonly && !c.Writes() && f.cfg.View.HasReplica(c.Group) && !f.lingering.Load() {
		return nil
	}
	leader := f.cfg.View.LeaderOf(c.Group)
	switch {
	case leader == f.cfg.NodeID:
		// This node leads (even stopping: a transfer that did not finish):
		// it serves, and a replica named in CLUSTER SLOTS forwards here
		// rather than sending the client back (below).
		return nil
	case f.lingering.Load():
		// Going away: any node but this one, settled or not, is a better
		// place for the client to learn than one about to close.
		if leader = f.redirectTarget(c.Group); leader == f.cfg.NodeID {
			return nil
		}
	case leader == 0 || !f.leaders.settled(c.Group, leader, f.now()) || f.cfg.View.Away(leader) ||
		!f.slotsSeen.settled(f.slotTable(), f.now()):
		// Unknown, just moved, stopping (it redirects everyone), or the
		// partitions just split: the router forwards instead.
		return nil
	}
	rec, ok := f.nodeRecord(leader)
	if !ok {
		return nil
	}
	ip, port, ok := f.clientEndpoint(rec, localIPOf(st.local))
	if !ok {
		return nil
	}
	return resp.AppendError(nil, fmt.Sprintf("MOVED %d %s", ring.Slot(c.Args[c.Keys[0]]), net.JoinHostPort(ip, strconv.Itoa(port))))
}

// redirectTarget is the node a client should send group's commands to,
// as this node names it in MOVED and CLUSTER SLOTS: the leader; or, when
// no leader is known or the leader said it is stopping, this node, which
// forwards. A stopping node
// (lingering) never names itself: a client that kept that answer would
// find nothing listening once it exits, and a refused connection makes a
// cluster client retry the same map, never reload it. It names the leader
// if another node leads, else another replica that serves (up before
// suspect), else any node that serves (it forwards); never a node that
// said it is stopping too.
func (f *Server) redirectTarget(group uint64) uint64 {
	self := f.cfg.NodeID
	leader := f.cfg.View.LeaderOf(group)
	if !f.lingering.Load() {
		if leader == 0 || f.cfg.View.Away(leader) {
			return self // forwards
		}
		return leader
	}
	recs := map[uint64]api.NodeRecord{}
	for _, rec := range f.cfg.View.NodeRecords() {
		recs[rec.ID] = rec
	}
	usable := func(id uint64, state string) bool {
		rec, ok := recs[id]
		return ok && id != self && rec.State == state && rec.RESPAddr != "" && !f.cfg.View.Away(id)
	}
	if leader != 0 && (usable(leader, api.NodeUp) || usable(leader, api.NodeSuspect) || usable(leader, api.NodeDraining)) {
		return leader
	}
	replicas := f.cfg.View.GroupNodes(group)
	for _, state := range []string{api.NodeUp, api.NodeDraining, api.NodeSuspect} {
		for _, id := range replicas {
			if usable(id, state) {
				return id
			}
		}
	}
	for _, rec := range f.cfg.View.NodeRecords() {
		if usable(rec.ID, api.NodeUp) {
			return rec.ID
		}
	}
	return self
}

// nodeRecord is one node's registry entry, as the view has it.
func (f *Server) nodeRecord(id uint64) (api.NodeRecord, bool) {
	for _, rec := range f.cfg.View.NodeRecords() {
		if rec.ID == id {
			return rec, true
		}
	}
	return api.NodeRecord{}, false
}
