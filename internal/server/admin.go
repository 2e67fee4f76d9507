package server

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kintsu/kintsu/internal/api"
)

func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := n.eng.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !n.Ready() {
			http.Error(w, "not ready: some partition has no known leader\n", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(n.Status())
	})
	// Hands every leadership of this node to up-to-date followers, for
	// maintenance or to test clients against moving leaders; the balancer
	// evens leadership out again later. Answers how many it still leads.
	mux.HandleFunc("POST /v1/leadership/transfer", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		err := n.eng.TransferLeadership(ctx)
		cancel()
		left := 0
		for _, g := range n.eng.Status() {
			if g.LeaderNode == n.cfg.NodeID {
				left++
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(api.TransferJSON{StillLeading: left})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.Registry, promhttp.HandlerOpts{}))
	n.memberRoutes(mux)
	n.backupRoutes(mux)
	if n.cfg.FaultInjection {
		n.faultRoutes(mux)
	}
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// Status reports the node's view of the cluster.
func (n *Node) Status() api.StatusJSON {
	st := api.StatusJSON{NodeID: n.cfg.NodeID, ClusterID: n.layout.ident.ClusterID, Version: api.Version, Ready: n.Ready()}
	st.Nodes = n.nodeRecords()
	local := map[uint64]int{}
	gs := n.eng.Status()
	for i, g := range gs {
		local[g.Group] = i
	}
	for _, p := range n.view().parts {
		ps := api.PartitionStatus{ID: p.ID, SlotStart: p.SlotStart, SlotEnd: p.SlotEnd, Replicas: p.Replicas, Learners: p.Learners, Leader: n.router.LeaderOf(uint64(p.ID))}
		if i, ok := local[uint64(p.ID)]; ok {
			// This node's replica knows the membership best.
			ps.Replicas, ps.Learners = gs[i].Nodes, gs[i].Learners
			ps.AppliedIndex, ps.Term, ps.Local, ps.Keys = gs[i].AppliedIndex, gs[i].Term, gs[i].Role, gs[i].Keys
		}
		st.Partitions = append(st.Partitions, ps)
	}
	return st
}

// nodeRecord is one node's registry entry, as nodeRecords reads it.
func (n *Node) nodeRecord(id uint64) (api.NodeRecord, bool) {
	for _, rec := range n.nodeRecords() {
		if rec.ID == id {
			return rec, true
		}
	}
	return api.NodeRecord{}, false
}

// nodeRecords reads the node registry from the local metadata replica
// when there is one, falling back to the bootstrap view.
func (n *Node) nodeRecords() []api.NodeRecord {
	out := slices.Clone(n.view().nodes)
	now := n.clock.Now().UnixMilli()
	for i := range out {
		if out[i].ID == n.cfg.NodeID {
			out[i].RESPAddr, out[i].HTTPAddr = n.cfg.RESPAddr, n.cfg.HTTPAddr
		}
		out[i].State = livenessOf(out[i], now, n.cfg.HeartbeatInterval, n.cfg.DeadTimeout)
		if hb := out[i].HeartbeatMS; hb != 0 {
			out[i].LastHeartbeat = time.UnixMilli(hb).UTC().Format(time.RFC3339Nano)
		}
	}
	slices.SortFunc(out, func(a, b api.NodeRecord) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
