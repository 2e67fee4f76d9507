package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// cutPlan is the shape of one network partition. Links are cut on the
// sending side (the node's transport drops what it would send), so a cut
// in both directions is a partition and a cut in one is asymmetric: the
// case where a node still hears its peers but cannot answer them, or the
// reverse, which leader election must survive as well as a clean split.
type cutPlan struct {
	shape string   // "isolate", "split", "one-way-out", "one-way-in"
	side  []uint64 // the minority side; for one-way shapes, the one node
}

// planCut draws a partition shape for a cluster of nodes (ids 1..nodes),
// around node.
func planCut(rng *rand.Rand, node uint64, nodes int) cutPlan {
	shapes := []string{"isolate", "one-way-out", "one-way-in"}
	if nodes >= 5 {
		shapes = append(shapes, "split") // with 3 nodes a split is an isolation
	}
	p := cutPlan{shape: shapes[rng.IntN(len(shapes))], side: []uint64{node}}
	if p.shape == "split" {
		// A random minority of 2..(nodes-1)/2 nodes, node among them.
		size := 2 + rng.IntN((nodes-1)/2-1)
		for _, i := range rng.Perm(nodes) {
			if id := uint64(i) + 1; len(p.side) < size && id != node {
				p.side = append(p.side, id)
			}
		}
		slices.Sort(p.side)
	}
	return p
}

// links maps each node to the peers it must not send to.
func (p cutPlan) links(all []uint64) map[uint64][]uint64 {
	in := func(id uint64) bool { return slices.Contains(p.side, id) }
	out := map[uint64][]uint64{}
	for _, from := range all {
		for _, to := range all {
			if from == to {
				continue
			}
			var cut bool
			switch p.shape {
			case "isolate", "split":
				cut = in(from) != in(to)
			case "one-way-out": // the node cannot send; it still receives
				cut = in(from)
			case "one-way-in": // nobody reaches the node; it still sends
				cut = in(to)
			}
			if cut {
				out[from] = append(out[from], to)
			}
		}
	}
	return out
}

func (p cutPlan) String() string {
	ids := make([]string, len(p.side))
	for i, id := range p.side {
		ids[i] = fmt.Sprint(id)
	}
	switch p.shape {
	case "split":
		return "split {" + strings.Join(ids, ",") + "} from the rest"
	case "one-way-out":
		return "node " + ids[0] + " cannot send"
	case "one-way-in":
		return "node " + ids[0] + " cannot receive"
	}
	return "isolate node " + ids[0]
}
