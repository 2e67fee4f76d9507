package admin

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strconv"
	"time"
)

// The web console: static files embedded in the binary (no CDN, nothing
// fetched from elsewhere), drawing what the read-only routes below and
// /v1/status return. It is read-only unless /v1/whoami says the user is
// an admin; even then the routes it calls check again.
//
//go:embed console
var consoleFiles embed.FS

// consoleWait bounds gathering the other nodes' load or events.
const consoleWait = 2 * time.Second

func (a *API) consoleRoutes(mux *http.ServeMux) {
	files, _ := fs.Sub(consoleFiles, "console")
	static := http.StripPrefix("/console/", http.FileServer(http.FS(files)))
	mux.Handle("GET /console/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		static.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusFound)
	})
	mux.HandleFunc("GET /v1/whoami", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, whoOf(r.Context()))
	})
	mux.HandleFunc("GET /v1/load", func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Load == nil {
			http.Error(w, "not served by this node", http.StatusNotFound)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), consoleWait)
		defer cancel()
		writeJSON(w, a.cfg.Load(ctx))
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Events == nil {
			http.Error(w, "not served by this node", http.StatusNotFound)
			return
		}
		limit := 100
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 1000 {
				http.Error(w, "limit: want 1 to 1000", http.StatusBadRequest)
				return
			}
			limit = n
		}
		ctx, cancel := context.WithTimeout(r.Context(), consoleWait)
		defer cancel()
		writeJSON(w, a.cfg.Events(ctx, limit))
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
