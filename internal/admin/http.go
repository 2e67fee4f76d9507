package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/kintsu/kintsu/internal/api"
)

func (a *API) statusRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := a.cfg.Engine.Err(); err != nil {
			// The error may name files and keys: it goes to the log, and
			// an unauthenticated probe learns only the verdict.
			a.log.Error("health check: the replication engine failed", "err", err)
			http.Error(w, "unhealthy: the replication engine stopped", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.cfg.Ready() {
			http.Error(w, "not ready: some partition has no known leader\n", http.StatusServiceUnavailable)
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

// Status reports the node's view of the cluster.
func (a *API) Status() api.StatusJSON {
	st := api.StatusJSON{NodeID: a.cfg.NodeID, ClusterID: a.cfg.ClusterID, Version: api.Version, Ready: a.cfg.Ready()}
	st.Nodes = a.cfg.Nodes()
	local := map[uint64]int{}
	gs := a.cfg.Engine.Status()
	for i, g := range gs {
		local[g.Group] = i
	}
	for _, p := range a.cfg.Partitions() {
		ps := api.PartitionStatus{ID: p.ID, SlotStart: p.SlotStart, SlotEnd: p.SlotEnd, Replicas: p.Replicas, Learners: p.Learners, Leader: a.cfg.Leader(uint64(p.ID))}
		if i, ok := local[uint64(p.ID)]; ok {
			// This node's replica knows the membership best.
			ps.Replicas, ps.Learners = gs[i].Nodes, gs[i].Learners
			ps.AppliedIndex, ps.Term, ps.Local, ps.Keys = gs[i].AppliedIndex, gs[i].Term, gs[i].Role, gs[i].Keys
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
