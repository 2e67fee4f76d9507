package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/api"
)

func (a *API) statusRoutes(mux *http.ServeMux) {
	// Liveness and readiness (api.Health): their bodies name only
	// partition ids and durations, so both may stay open.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if h := a.cfg.Health(); !h.Live() {
			unhealthy(w, "not live", h.NotLive)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		h := a.cfg.Health()
		if !h.Ready() {
			unhealthy(w, "not ready", h.NotReady)
			return
		}
		if len(h.Rebuilding) > 0 {
			_, _ = fmt.Fprintf(w, "ready; rebuilding the replicas of partitions %v from their peers (their data here was damaged)\n", h.Rebuilding)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(a.Status())
	})
	// Hands every leadership of this node to up-to-date followers, for
	// maintenance or to test clients against moving leaders; the balancer
	// evens leadership out again later. Answers how many it still leads.
	mux.HandleFunc("POST /v1/leadership/transfer", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		err := a.cfg.Engine.TransferLeadership(ctx)
		cancel()
		left := 0
		for _, g := range a.cfg.Engine.Status() {
			if g.LeaderNode == a.cfg.NodeID {
				left++
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(api.TransferJSON{StillLeading: left})
	})
}

// unhealthy answers a failed probe: 503 and "not ready: a; b".
func unhealthy(w http.ResponseWriter, what string, reasons []string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(what + ": " + strings.Join(reasons, "; ") + "\n"))
}

// Status reports the node's view of the cluster.
func (a *API) Status() api.StatusJSON {
	h := a.cfg.Health()
	st := api.StatusJSON{NodeID: a.cfg.NodeID, ClusterID: a.cfg.ClusterID, Version: api.Version, ReplicationFactor: a.cfg.Replicas, Ready: h.Ready(), NotReady: h.NotReady, Removed: h.Removed, Rebuilding: h.Rebuilding}
	st.Nodes = a.cfg.Nodes()
	st.Level = api.Level
	if a.cfg.ClusterLevel != nil {
		st.ClusterLevel = a.cfg.ClusterLevel()
	}
	local := map[uint64]int{}
	gs := a.cfg.Engine.Status()
	for i, g := range gs {
		local[g.Group] = i
	}
	for _, p := range a.cfg.Partitions() {
		ps := api.PartitionStatus{ID: p.ID, SlotStart: p.SlotStart, SlotEnd: p.SlotEnd, Replicas: p.Replicas, Learners: p.Learners, Leader: a.cfg.Leader(uint64(p.ID))}
		ps.NoQuorum = slices.Contains(h.Lost, p.ID)
		if i, ok := local[uint64(p.ID)]; ok {
			// This node's replica knows the membership best.
			ps.Replicas, ps.Learners = gs[i].Nodes, gs[i].Learners
			ps.AppliedIndex, ps.Term, ps.Local, ps.Keys, ps.KeysUpperBound = gs[i].AppliedIndex, gs[i].Term, gs[i].Role, gs[i].Keys, gs[i].KeysInexact
		}
		st.Partitions = append(st.Partitions, ps)
	}
	return st
}

// nodeRecord is one node's registry entry, as Config.Nodes reads it.
func (a *API) nodeRecord(id uint64) (api.NodeRecord, bool) {
	for _, rec := range a.cfg.Nodes() {
		if rec.ID == id {
			return rec, true
		}
	}
	return api.NodeRecord{}, false
}
