package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/kintsu/kintsu/internal/api"
)

// memberRoutes are the admin API's membership endpoints. They only record
// the operator's decision; the placement driver carries it out.
func (a *API) memberRoutes(mux *http.ServeMux) {
	handle := func(state string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
			if err != nil || id == 0 {
				http.Error(w, "node id must be a positive integer", http.StatusBadRequest)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
			defer cancel()
			if state == api.NodeRemoved {
				if rec, ok := a.nodeRecord(id); ok && rec.State != api.NodeDead && rec.State != api.NodeRemoved && r.URL.Query().Get("force") != "true" {
					http.Error(w, fmt.Sprintf("node %d is %s, not dead: decommission it (its replicas move away first), or add ?force=true", id, rec.State), http.StatusConflict)
					return
				}
			}
			if err := a.cfg.SetNodeState(ctx, id, state); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			_, _ = w.Write([]byte("ok\n"))
		}
	}
	// Splits a partition at a slot (?slot=S; default the middle of its
	// range): control.SplitPartition. Repeating it finishes a split
	// that was interrupted.
	mux.HandleFunc("POST /v1/partitions/{id}/split", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || id < 0 {
			http.Error(w, "partition id must be a non-negative integer", http.StatusBadRequest)
			return
		}
		var at uint64
		if s := r.URL.Query().Get("slot"); s != "" {
			if at, err = strconv.ParseUint(s, 10, 16); err != nil || at == 0 || at >= 16384 {
				http.Error(w, "slot must be between 1 and 16383", http.StatusBadRequest)
				return
			}
		}
		if a.cfg.SplitPartition == nil {
			http.Error(w, "this node cannot split partitions", http.StatusNotImplemented)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		right, err := a.cfg.SplitPartition(ctx, id, uint16(at))
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(api.SplitJSON{Left: id, Right: right})
	})
	// Merges a partition with its right neighbour (its left one for the
	// last): control.Placement.MergePartitions. 202 while the merge waits
	// for its replicas to be co-located (the placement driver finishes it;
	// asking again reports where it stands).
	mux.HandleFunc("POST /v1/partitions/{id}/merge", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || id < 0 {
			http.Error(w, "partition id must be a non-negative integer", http.StatusBadRequest)
			return
		}
		if a.cfg.MergePartitions == nil {
			http.Error(w, "this node cannot merge partitions", http.StatusNotImplemented)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		res, err := a.cfg.MergePartitions(ctx, id)
		status := http.StatusOK
		switch {
		case err != nil && res.Pending:
			status = http.StatusAccepted
		case err != nil:
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(res)
	})
	mux.HandleFunc("POST /v1/nodes/{id}/decommission", handle(api.NodeDraining))
	mux.HandleFunc("POST /v1/nodes/{id}/remove", handle(api.NodeRemoved))
}
