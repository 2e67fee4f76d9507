package route

import "time"

// Confirmed leaders, for the node's readiness. A leader hint is kept until
// an answer replaces it, so it outlives a leader that lost its quorum or
// its process; readiness must not take it as evidence. A confirmation is
// a hint with the time a node last proved it: a forwarded request that
// succeeded there (a write committed by a quorum, or a read served after
// a quorum-confirmed ReadIndex), or a peer whose own replica knows that
// leader answering "who leads?" (control.Hints).

// confirmation is when node was last confirmed to lead a group.
type confirmation struct {
	node uint64
	at   time.Time
}

// ConfirmLeader records that node was just confirmed to lead group, and
// makes it the hint.
func (r *Router) ConfirmLeader(group, node uint64) {
	if node == 0 {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hints[group] = node
	r.confirmed[group] = confirmation{node: node, at: now}
}

// Confirmed returns the node last confirmed to lead group and when; 0 and
// the zero time if none ever was.
func (r *Router) Confirmed(group uint64) (node uint64, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.confirmed[group]
	return c.node, c.at
}
