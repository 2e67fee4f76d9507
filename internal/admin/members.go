package admin

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

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
	mux.HandleFunc("POST /v1/nodes/{id}/decommission", handle(api.NodeDraining))
	mux.HandleFunc("POST /v1/nodes/{id}/remove", handle(api.NodeRemoved))
}
