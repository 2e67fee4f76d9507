package route

import (
	"slices"
)

// LeaderOf returns the node believed to lead group, 0 if unknown.
func (r *Router) LeaderOf(group uint64) uint64 {
	if l := r.eng.Leader(group); l != 0 {
		return l
	}
	// Not hosted here, or the local replica knows no leader (it may be
	// cut off, or a leftover of a move): what peers say.
	return r.Hint(group)
}

// GroupNodes lists the nodes holding group (voters, then learners),
// preferred leader first: this node's own replica knows best, then the
// cluster map (Config.Members).
func (r *Router) GroupNodes(group uint64) []uint64 {
	if st, ok := r.eng.GroupStatus(group); ok {
		return append(slices.Clone(st.Nodes), st.Learners...)
	}
	return r.cfg.Members(group)
}
