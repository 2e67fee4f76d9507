package server

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/kintsu/kintsu/internal/api"
)

// What the web console shows of the whole cluster is gathered by the node
// serving it, over the peer port (member-only calls, like every other):
// each node's load and its latest events.
const (
	methodLoad   = "load"
	methodEvents = "events"
	// eventsKept: each node's ring of recent events; eventsShown: how
	// many of a node's the console lists.
	eventsKept  = 512
	eventsShown = 100
	// consoleCallTimeout bounds asking one node: a node that does not
	// answer is shown as such, never waited for.
	consoleCallTimeout = time.Second
)

// localLoad is this node's cumulative load.
func (n *Node) localLoad() api.NodeLoad {
	l := api.NodeLoad{Node: n.cfg.NodeID, TimeMS: time.Now().UnixMilli()}
	var m dto.Metric
	if err := n.metrics.RequestLatency.Write(&m); err == nil && m.Histogram != nil {
		h := m.Histogram
		l.Commands, l.LatencySum = h.GetSampleCount(), h.GetSampleSum()
		for _, b := range h.Bucket {
			l.Buckets = append(l.Buckets, api.LatencyBucket{LE: b.GetUpperBound(), Count: b.GetCumulativeCount()})
		}
	}
	if n.front != nil {
		l.Clients = n.front.ConnectedClients()
	}
	for _, g := range n.eng.Status() {
		if g.LeaderNode == n.cfg.NodeID && g.Group != MetaGroup {
			l.Leaders++
		}
	}
	return l
}

// maxConsoleAnswer bounds a peer's answer for the console (100 events of
// at most a few hundred bytes, or one load, fit many times over).
const maxConsoleAnswer = 256 << 10

// askEveryNode calls method on every member that serves (this node
// answers itself with local), at once, each within consoleCallTimeout;
// check validates (and may correct) a peer's decoded answer, and fail is
// what stands for a node that did not answer, or not validly.
func askEveryNode[T any](ctx context.Context, n *Node, method string, local func() T, check func(id uint64, v *T) error, fail func(id uint64, err error) T) []T {
	var mu sync.Mutex
	out := []T{local()}
	n.forEachPeer(ctx, consoleCallTimeout, func(ctx context.Context, id uint64) {
		var v T
		b, err := n.tr.Call(ctx, id, method, nil)
		switch {
		case err != nil:
		case len(b) > maxConsoleAnswer:
			err = fmt.Errorf("an answer of %d bytes (at most %d)", len(b), maxConsoleAnswer)
		default:
			err = json.Unmarshal(b, &v)
		}
		if err == nil {
			err = check(id, &v)
		}
		if err != nil {
			v = fail(id, err)
		}
		mu.Lock()
		out = append(out, v)
		mu.Unlock()
	})
	return out
}

// clusterLoad is every serving node's load, by node id.
func (n *Node) clusterLoad(ctx context.Context) []api.NodeLoad {
	loads := askEveryNode(ctx, n, methodLoad, n.localLoad, func(id uint64, l *api.NodeLoad) error {
		if len(l.Buckets) > 64 || l.Error != "" {
			return fmt.Errorf("a malformed load (%d buckets)", len(l.Buckets))
		}
		l.Node = id // a peer speaks for itself only
		return nil
	}, func(id uint64, err error) api.NodeLoad {
		return api.NodeLoad{Node: id, Error: fmt.Sprintf("did not answer: %v", err)}
	})
	slices.SortFunc(loads, func(a, b api.NodeLoad) int { return cmp.Compare(a.Node, b.Node) })
	return loads
}

// clusterEvents is the latest events of every serving node, newest first.
func (n *Node) clusterEvents(ctx context.Context, limit int) []api.Event {
	lists := askEveryNode(ctx, n, methodEvents, func() []api.Event { return n.events.Latest(eventsShown) },
		func(id uint64, evs *[]api.Event) error {
			if len(*evs) > eventsShown {
				return fmt.Errorf("%d events (at most %d)", len(*evs), eventsShown)
			}
			for i := range *evs {
				(*evs)[i].Node = id // a peer speaks for itself only
			}
			return nil
		},
		func(id uint64, err error) []api.Event {
			return []api.Event{{TimeMS: time.Now().UnixMilli(), Node: id, Level: "WARN", Message: "the node did not answer for its events", Attrs: err.Error()}}
		})
	var all []api.Event
	for _, l := range lists {
		all = append(all, l[:min(len(l), eventsShown)]...)
	}
	slices.SortStableFunc(all, func(a, b api.Event) int { return cmp.Compare(b.TimeMS, a.TimeMS) })
	return all[:min(len(all), limit)]
}

// methodDropCut asks a node to drop its snapshots of a backup cut the
// coordinator gave up on (admin's dropCutEverywhere).
const methodDropCut = "dropcut"

// maxCutID bounds a cut id a peer may send (ids are short random hex).
const maxCutID = 128

// dropCutOnPeers asks every other serving member to drop cut id, at once,
// each within consoleCallTimeout; a node that does not answer lets it
// expire.
func (n *Node) dropCutOnPeers(ctx context.Context, id string) {
	n.forEachPeer(ctx, consoleCallTimeout, func(ctx context.Context, peer uint64) {
		_, _ = n.tr.Call(ctx, peer, methodDropCut, []byte(id))
	})
}

// serveDropCut drops this node's snapshots of the cut a peer names.
func (n *Node) serveDropCut(body []byte) ([]byte, error) {
	if len(body) == 0 || len(body) > maxCutID {
		return nil, fmt.Errorf("a cut id of %d bytes", len(body))
	}
	n.eng.DropCut(string(body))
	return nil, nil
}
