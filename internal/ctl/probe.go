package ctl

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/api"
)

// ProbeTimeout bounds one node's answer to GET /readyz: a paused node
// accepts the connection and never answers, and must not hold up the
// status of the others.
const ProbeTimeout = 2 * time.Second

// Probe is one node's own answer to GET /readyz.
type Probe struct {
	Answered bool
	Ready    bool
	// Why is the node's reason when not ready ("partition 5 has no
	// leader with a quorum"), or why it did not answer.
	Why string
}

// ProbeAll asks every node of st that has an admin address whether it is
// ready, all at once, each within ProbeTimeout (and ctx). Nodes without
// an address are left out.
func ProbeAll(ctx context.Context, st api.StatusJSON) map[uint64]Probe {
	out := map[uint64]Probe{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range st.Nodes {
		if n.HTTPAddr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := probe(ctx, n.HTTPAddr)
			mu.Lock()
			out[n.ID] = p
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func probe(ctx context.Context, addr string) Probe {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL(addr, "/readyz"), nil)
	if err != nil {
		return Probe{Why: err.Error()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return Probe{Why: "no answer (timed out)"}
		}
		return Probe{Why: "unreachable"}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return Probe{Why: "no answer (timed out)"}
	}
	why := printable(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(b)), "not ready:")))
	switch resp.StatusCode {
	case http.StatusOK:
		return Probe{Answered: true, Ready: true}
	case http.StatusServiceUnavailable:
		return Probe{Answered: true, Why: why}
	}
	return Probe{Answered: true, Why: "answered " + resp.Status}
}

// printable keeps a node's words from steering the operator's terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
