// Package stranger is a hostile peer for the chaos suite (`kintsu
// stranger`, run by the stranger nemesis): a process that reaches the
// cluster's peer port and floods it with the raft frames that once crashed
// nodes or destroyed replicas, plus random ones. It speaks through the
// real transport, so its frames are exactly what a peer's would be.
//
// What it sends, to every node in turn, for a bounded time:
//   - heartbeats and votes with terms near 2^64 and far above any real one;
//   - "your replica was removed" notices for every group and replica id;
//   - leader messages addressed to replica ids above the receiver's;
//   - appends whose entries, commit or indexes do not fit the log;
//   - messages decoded from random bytes.
//
// It claims to be node As: a non-member (the default, 99) or, under
// --insecure where nothing vouches for a sender, a member. With a
// certificate it presents that certificate; one of the cluster's CA that
// names a non-member must get it nowhere either. Whatever it sends, a
// node must keep serving and lose nothing: the chaos run checks that.
package stranger

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kintsu/kintsu/internal/pki"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/transport"
)

// Config is one stranger's run.
type Config struct {
	Peers      map[uint64]string // node id -> peer address
	ClusterID  string            // sent with every frame ("" sends none)
	As         uint64            // the node id it claims
	Partitions int               // data groups 0..Partitions-1 (and the metadata group)
	Duration   time.Duration
	Seed       uint64
	// CertsDir, when set, holds a node certificate for As (and ca.crt) to
	// present; empty speaks plaintext.
	CertsDir string
	// Rate bounds the frames sent per second to each node.
	Rate int
}

// maxRate bounds Config.Rate: the ticker's period must stay above zero.
const maxRate = 100_000

// metaGroup is the metadata raft group's id (statemachine.MetaGroup).
const metaGroup = 1 << 32

// Report says what was sent.
type Report struct {
	Frames int
	ByKind map[string]int
}

// Run floods the peers until the duration is over or ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (Report, error) {
	if cfg.As == 0 {
		cfg.As = 99
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 200
	}
	cfg.Rate = min(cfg.Rate, maxRate)
	if cfg.Partitions <= 0 {
		cfg.Partitions = 16
	}
	tr := transport.New(cfg.As, log)
	defer tr.Stop()
	if cfg.CertsDir != "" {
		certs, err := pki.LoadNode(cfg.CertsDir, cfg.As)
		if err != nil {
			return Report{}, err
		}
		tr.SetTLS(transport.TLS{Server: certs.PeerServer(), Client: func(uint64) *tls.Config { return certs.PeerClient(0) }})
	}
	if cfg.ClusterID != "" {
		tr.SetClusterID(cfg.ClusterID)
	}
	var ids []uint64
	for id, addr := range cfg.Peers {
		tr.SetPeer(id, addr)
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if len(ids) == 0 {
		return Report{}, fmt.Errorf("no peers")
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed))
	rep := Report{ByKind: map[string]int{}}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	tick := time.NewTicker(time.Second / time.Duration(cfg.Rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return rep, nil
		case <-tick.C:
		}
		for _, id := range ids {
			kind, env := frame(rng, cfg.Partitions)
			tr.Send(id, []raftstore.Envelope{env})
			rep.Frames++
			rep.ByKind[kind]++
		}
	}
}

// frame draws one hostile frame.
func frame(rng *rand.Rand, partitions int) (string, raftstore.Envelope) {
	group := uint64(rng.IntN(partitions))
	if rng.IntN(8) == 0 {
		group = metaGroup
	}
	replica := func() uint64 { return 1 + uint64(rng.IntN(6)) }
	hugeTerm := func() uint64 {
		switch rng.IntN(3) {
		case 0:
			return math.MaxUint64
		case 1:
			return math.MaxUint64 - uint64(rng.IntN(1000))
		}
		return 1000 + uint64(rng.IntN(1_000_000))
	}
	env := raftstore.Envelope{Group: group}
	switch k := rng.IntN(6); k {
	case 0:
		env.Msg = &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(replica()), To: new(replica()), Term: new(hugeTerm()), Commit: new(uint64(rng.IntN(1 << 20)))}
		return "huge-term heartbeat", env
	case 1:
		env.Msg = &pb.Message{Type: pb.MsgVote.Enum(), From: new(replica()), To: new(replica()), Term: new(hugeTerm()), Index: new(uint64(rng.IntN(1 << 20))), LogTerm: new(hugeTerm())}
		return "huge-term vote", env
	case 2:
		env.Removed = true
		env.Msg = &pb.Message{To: new(replica())}
		return "removed notice", env
	case 3:
		env.Msg = &pb.Message{Type: pb.MsgApp.Enum(), From: new(replica()), To: new(10 + replica()), Term: new(uint64(1 + rng.IntN(100))),
			Index: new(uint64(rng.IntN(100))), LogTerm: new(uint64(rng.IntN(100))), Commit: new(uint64(rng.IntN(1000)))}
		return "leader message to a newer id", env
	case 4:
		n := 1 + rng.IntN(4)
		ents := make([]*pb.Entry, n)
		for i := range ents {
			typ := pb.EntryType(rng.IntN(3))
			data := make([]byte, rng.IntN(64))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			ents[i] = &pb.Entry{Type: &typ, Term: new(uint64(rng.IntN(10))), Index: new(uint64(rng.IntN(1 << 20))), Data: data}
		}
		env.Msg = &pb.Message{Type: pb.MsgApp.Enum(), From: new(replica()), To: new(replica()), Term: new(uint64(1 + rng.IntN(10))),
			Index: new(uint64(rng.IntN(1 << 20))), LogTerm: new(uint64(rng.IntN(10))), Commit: new(uint64(rng.IntN(1 << 30))), Entries: ents}
		return "append that does not fit", env
	default:
		b := make([]byte, 1+rng.IntN(128))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		m := &pb.Message{}
		if err := proto.Unmarshal(b, m); err != nil {
			m = &pb.Message{Type: pb.MessageType(rng.IntN(24)).Enum(), From: new(replica()), To: new(replica()), Term: new(rng.Uint64())}
		}
		env.Msg = m
		return "random message", env
	}
}
