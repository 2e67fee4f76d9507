package raftstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kintsu/kintsu/internal/metrics"
	"github.com/kintsu/kintsu/internal/raftstore"
)

// leaseCluster starts a cluster with read leases on, keeping each node's
// metrics.
func leaseCluster(t *testing.T, electionTicks int) (*cluster, map[uint64]*metrics.Metrics) {
	var mu sync.Mutex
	ms := map[uint64]*metrics.Metrics{}
	c := newCluster(t, 3, 1, func(cfg *raftstore.Config) {
		cfg.ReadLeases = true
		cfg.ElectionTicks = electionTicks
		mu.Lock()
		defer mu.Unlock()
		cfg.Metrics = metrics.New()
		ms[cfg.NodeID] = cfg.Metrics
	})
	return c, ms
}

func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func readBarrier(t *testing.T, n *testNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.eng.ReadBarrier(ctx, 0); err != nil {
		t.Fatal(err)
	}
}

// With a lease, a leader answers most reads without a round, and what it
// answers is current.
func TestReadLeaseServesWithoutRounds(t *testing.T) {
	c, ms := leaseCluster(t, 50) // a 100 ms lease at the tests' 10 ms tick
	if r, err := c.write(0, 1, "set", "k", "v1"); err != nil || r != "+OK\r\n" {
		t.Fatalf("set: %q, %v", r, err)
	}
	l := c.leader(0)
	m := ms[l.id]
	waitFor(t, "a lease", 5*time.Second, func() bool {
		readBarrier(t, l)
		return counter(m.LeaseReads) > 0
	})
	rounds := counter(m.ReadRounds)
	for range 200 {
		readBarrier(t, l)
	}
	if got := counter(m.ReadRounds) - rounds; got >= 100 {
		t.Fatalf("200 reads took %v rounds: the lease is not used", got)
	}
	if r, err := c.write(0, 1, "set", "k", "v2"); err != nil || r != "+OK\r\n" {
		t.Fatalf("set: %q, %v", r, err)
	}
	if l2 := c.leader(0); l2 == l {
		readBarrier(t, l)
		if got := localGet(t, l, 0, "k"); got != bulk("v2") {
			t.Fatalf("a lease read after an acknowledged write saw %q", got)
		}
	}
}

// A follower that answered lease rounds holds back PeerDown's campaign
// until the leader's lease must have run out (W, four fifths of the
// election timeout), instead of campaigning at once; it still beats the
// election timer.
func TestReadLeaseHoldsBackPeerDownCampaign(t *testing.T) {
	const ticks = 200 // election timeout 2 s at the tests' 10 ms tick; W = 1.6 s
	c, _ := leaseCluster(t, ticks)
	old := c.settle(t)
	// Reads make the followers answer lease rounds up to the stop.
	for range 50 {
		readBarrier(t, old)
	}
	c.stop(old.id)
	stopped := time.Now()
	// Not before half of W: whatever the machine's speed, a faster election
	// would be the lease being cut short.
	for time.Since(stopped) < 800*time.Millisecond {
		for _, n := range c.nodes {
			if n.eng.Leader(0) == n.id {
				t.Fatalf("a new leader %v after the old one stopped, before its lease could have run out", time.Since(stopped))
			}
		}
		time.Sleep(10 * time.Millisecond) // polling, not synchronization
	}
	waitFor(t, "a new leader", 10*time.Second, func() bool {
		for _, n := range c.nodes {
			if n.eng.Leader(0) == n.id {
				return true
			}
		}
		return false
	})
}

// A leader earns no lease while a voter does not run leases, or runs them
// with another election timeout: that voter would not hold back its
// campaigns (a node of an older version, or one misconfigured), so the
// group stays on quorum reads. Each answer says what its node runs
// (Envelope.Lease).
func TestNoLeaseWithAVoterThatDoesNotHoldBack(t *testing.T) {
	for _, odd := range []struct {
		name   string
		leases bool
		ticks  int
	}{{"leases off", false, 50}, {"other timing", true, 60}} {
		t.Run(odd.name, func(t *testing.T) {
			var mu sync.Mutex
			ms := map[uint64]*metrics.Metrics{}
			c := newCluster(t, 3, 1, func(cfg *raftstore.Config) {
				cfg.ReadLeases, cfg.ElectionTicks = true, 50
				if cfg.NodeID == 3 {
					cfg.ReadLeases, cfg.ElectionTicks = odd.leases, odd.ticks
				}
				mu.Lock()
				defer mu.Unlock()
				cfg.Metrics = metrics.New()
				ms[cfg.NodeID] = cfg.Metrics
			})
			c.moveLeader(t, 0, 1)
			l := c.leader(0)
			for range 200 {
				readBarrier(t, l)
			}
			mu.Lock()
			defer mu.Unlock()
			for id, m := range ms {
				if n := counter(m.LeaseReads); n > 0 {
					t.Fatalf("node %d served %v reads on a lease with node 3 unable to hold back", id, n)
				}
			}
			if counter(ms[l.id].ReadRounds) < 100 {
				t.Fatalf("200 reads took %v rounds", counter(ms[l.id].ReadRounds))
			}
		})
	}
}
