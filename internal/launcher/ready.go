package launcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// tailLines is how much of a log an error quotes.
const tailLines = 20

// WaitReady polls GET /readyz of every running node until all answer 200.
// When ctx ends first, the error names the nodes not ready, with their last
// probe result and log file; it wraps ctx.Err(). A node that crashed — it
// exited without Kill or Stop asking it to, before or during the wait — is
// reported at once, with the tail of its log. Killed and stopped nodes are
// not waited for. If ctx has no deadline, a default of two minutes applies.
func (c *Cluster) WaitReady(ctx context.Context) error {
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	procs := c.awaited()
	results := make(chan readyResult, len(procs))
	for _, p := range procs {
		go func() { results <- c.pollReady(ctx, p) }()
	}

	var exited []error
	var notReady []readyResult
	for range procs { // collect every result: no poller outlives the call
		r := <-results
		switch {
		case r.exited != nil:
			exited = append(exited, r.exited)
			cancel() // one dead node is enough to fail; stop the others
		case r.lastErr != nil:
			notReady = append(notReady, r)
		}
	}
	if len(exited) > 0 {
		return errors.Join(exited...)
	}
	if len(notReady) > 0 {
		slices.SortFunc(notReady, func(a, b readyResult) int { return cmp.Compare(a.id, b.id) })
		return notReadyError(ctx, notReady)
	}
	return nil
}

// WaitNodeReady polls node id's /readyz until it answers 200, as WaitReady
// does for one node. A killed or stopped node fails at once with
// ErrNotRunning, a crashed one with its log tail.
func (c *Cluster) WaitNodeReady(ctx context.Context, id uint64) error {
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	if c.spec(id) == nil {
		return fmt.Errorf("launcher: node %d: %w", id, ErrUnknownNode)
	}
	c.mu.Lock()
	p := c.procs[id]
	down := p == nil || (p.exited && p.requested)
	c.mu.Unlock()
	if down {
		return fmt.Errorf("launcher: node %d: %w", id, ErrNotRunning)
	}
	r := c.pollReady(ctx, p)
	switch {
	case r.exited != nil:
		return r.exited
	case r.lastErr != nil:
		return notReadyError(ctx, []readyResult{r})
	}
	return nil
}

type readyResult struct {
	id      uint64
	log     string
	lastErr error // last probe failure, if never ready
	exited  error // set if the process exited while polling
}

// pollReady probes p until ready, exited, or ctx ends.
func (c *Cluster) pollReady(ctx context.Context, p *proc) readyResult {
	r := readyResult{id: p.spec.info.ID, log: p.spec.info.LogPath}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-p.reaped:
			r.exited = c.exitedError(p)
			return r
		case <-ctx.Done():
			if r.lastErr == nil {
				r.lastErr = ctx.Err()
			}
			return r
		case <-t.C:
		}
		if r.lastErr = c.probe(ctx, p.spec.info.HTTPAddr); r.lastErr == nil {
			return r
		}
		t.Reset(pollInterval)
	}
}

// probe is one GET /readyz, bounded by the client's short timeout.
func (c *Cluster) probe(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.scheme+"://"+addr+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// awaited returns the latest process of every node WaitReady must cover:
// running ones, and crashed ones (so a node that died before the call is
// reported, not skipped). Nodes the launcher was asked to take down are left
// out.
func (c *Cluster) awaited() []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*proc
	for _, id := range c.ids {
		if p := c.procs[id]; p != nil && (!p.exited || !p.requested) {
			out = append(out, p)
		}
	}
	return out
}

func (c *Cluster) exitedError(p *proc) error {
	c.mu.Lock()
	err, requested, how := p.exitErr, p.requested, "on its own"
	if requested {
		how = "as requested (Kill/Stop)"
	}
	c.mu.Unlock()
	info := p.spec.info
	last := tail(info.LogPath, tailLines)
	exited := fmt.Errorf("launcher: node %d (pid %d) exited %s: %s\n--- last lines of %s ---\n%s",
		info.ID, p.pid, how, exitText(err), info.LogPath, last)
	if role, addr, ok := bindFailure(last); ok && !requested {
		// Another process took the port between checkPorts and the
		// node's own listen: the same failure checkPorts reports, so
		// callers that pick ports again on a PortError do so here too.
		return &PortError{Node: info.ID, Role: role, Addr: addr, Err: exited}
	}
	return exited
}

// bindLine is how a node's log says it could not listen on a port.
var bindLine = regexp.MustCompile(`\(--(resp|peer|http)-addr\): listen tcp ([^ ]+): bind: address already in use`)

// bindFailure finds, in a node's last log lines, the port it could not
// listen on because another process had it.
func bindFailure(log string) (role, addr string, ok bool) {
	m := bindLine.FindStringSubmatch(log)
	if m == nil {
		return "", "", false
	}
	return map[string]string{"resp": "RESP", "peer": "peer", "http": "HTTP"}[m[1]], m[2], true
}

func notReadyError(ctx context.Context, rs []readyResult) error {
	var ids, details []string
	for _, r := range rs {
		ids = append(ids, fmt.Sprint(r.id))
		details = append(details, fmt.Sprintf("  node %d: last probe: %v; log: %s", r.id, r.lastErr, r.log))
	}
	return fmt.Errorf("launcher: node(s) %s not ready: %w\n%s",
		strings.Join(ids, ", "), context.Cause(ctx), strings.Join(details, "\n"))
}

func withDefaultDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, defaultReadyWait)
}

// tail returns the last n lines of the file at path (reading at most its
// last 16 KiB).
func tail(path string, n int) string {
	const maxBytes = 16 << 10
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	off := max(0, st.Size()-maxBytes)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // the first line was cut in the middle
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
