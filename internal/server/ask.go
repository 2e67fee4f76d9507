package server

import (
	"context"
	"sync"

	"github.com/kintsu/kintsu/internal/api"
)

// peers sends the front end's questions to the other members
// (edge.Peers): every one at once, each answer taken if it comes before
// the deadline. A PUBLISH is thus delivered at most once: a node that
// does not answer is not asked again.
type peers struct{ n *Node }

func (p peers) Ask(ctx context.Context, body []byte) [][]byte {
	n := p.n
	var (
		mu  sync.Mutex
		out [][]byte
		wg  sync.WaitGroup
	)
	for _, rec := range n.cmap.Current().Nodes {
		if rec.ID == n.cfg.NodeID || rec.State == api.NodeRemoved {
			continue
		}
		wg.Add(1)
		go func(id uint64) {
			defer wg.Done()
			b, err := n.tr.Call(ctx, id, methodAsk, body)
			if err != nil {
				return
			}
			mu.Lock()
			out = append(out, b)
			mu.Unlock()
		}(rec.ID)
	}
	wg.Wait()
	return out
}

// AskNode sends body to one member.
func (p peers) AskNode(ctx context.Context, node uint64, body []byte) ([]byte, error) {
	return p.n.tr.Call(ctx, node, methodAsk, body)
}
