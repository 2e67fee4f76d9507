package admin

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/pki"
)

// Authentication of the admin API. Every route but /healthz, /readyz and
// /metrics (which reveal no data) needs an ACL user allowed every @admin
// command — except the read-only ones (readPaths: the console, status,
// load, events), which any enabled user may GET — shown by either:
//   - a verified TLS client certificate whose Common Name is the user
//     (the cluster's CA vouches for it; no password), or
//   - "Authorization: Bearer USER:PASSWORD", or Basic credentials, checked
//     against the node's copy of the cluster's users (Config.Users): not
//     a linearizable read, so the API still answers (fault hooks, removing
//     a dead node) on a node cut off from the metadata group.
//
// Without credentials the answer is 401 with WWW-Authenticate; with a
// user that is not allowed @admin, 403. While the default user has no
// password (an insecure cluster), the API is open to loopback clients as
// it always was, and refused to others unless protected mode is off, as
// the RESP port is.

// openPaths reveal no data and are served to anyone (probes, scrapers).
var openPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// open: the probes, and the web console's static files (its page, script
// and styles hold no data; it asks for credentials and sends them with
// every call for data).
func open(r *http.Request) bool {
	return openPaths[r.URL.Path] || r.Method == http.MethodGet && (r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/console/"))
}

// readPaths show the cluster's shape and load but no data and change
// nothing: any enabled user may GET them (the web console, read-only
// unless the user is allowed @admin).
var readPaths = map[string]bool{"/v1/status": true, "/v1/load": true, "/v1/events": true, "/v1/whoami": true}

func readOnly(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && readPaths[r.URL.Path]
}

// consoleHeader marks the console's own calls: a 401 to them carries no
// WWW-Authenticate, so the browser leaves the asking to the console's
// sign-in form rather than popping up its own.
const consoleHeader = "X-Kintsu-Console"

const authRealm = `Bearer realm="kintsu", Basic realm="kintsu"`

// crossSite reports a browser's request made by another site's page: a
// browser attaches a client certificate, cached Basic credentials or (no
// password, loopback) nothing at all to a form another page posts, so
// such a request must not change anything. ctl and curl send neither
// header; the console's own calls are same-origin.
func crossSite(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || u.Host != r.Host
}

// guard wraps the API's routes with the authentication check.
func (a *API) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if crossSite(r) {
			http.Error(w, "refused: a request from another site's page may not change the cluster\n", http.StatusForbidden)
			return
		}
		if open(r) || a.cfg.Users == nil {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), whoKey{}, api.WhoAmI{User: acl.DefaultName, Admin: true})))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
		t, err := a.cfg.Users(ctx)
		cancel()
		if err != nil {
			http.Error(w, "cannot read the cluster's users to check credentials", http.StatusServiceUnavailable)
			return
		}
		status, msg, who := authorize(t, r, a.cfg.ProtectedMode, readOnly(r))
		switch status {
		case http.StatusOK:
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), whoKey{}, who)))
			return
		case http.StatusUnauthorized:
			if r.Header.Get(consoleHeader) == "" {
				w.Header().Set("WWW-Authenticate", authRealm)
			}
		}
		http.Error(w, msg, status)
	})
}

// authorize decides a request: 200 to serve it, and who asks; else the
// status and why. A read-only request needs any enabled user; the rest
// one allowed @admin.
func authorize(t *acl.Table, r *http.Request, protected, readOnly bool) (int, string, api.WhoAmI) {
	user, pass, cert, given := credentials(r)
	if !t.RequiresPassword() && !given {
		if !protected || isLoopback(r.RemoteAddr) {
			return http.StatusOK, "", api.WhoAmI{User: acl.DefaultName, Admin: true}
		}
		return http.StatusForbidden, "no password is set for the default user: the admin API serves only loopback clients (set one with --requirepass-file)\n", api.WhoAmI{}
	}
	if !given {
		return http.StatusUnauthorized, "credentials required: a client certificate, or Authorization: Bearer USER:PASSWORD\n", api.WhoAmI{}
	}
	u, ok := t.User(user)
	if cert {
		if !ok || !u.On {
			return http.StatusUnauthorized, "the certificate names no enabled user\n", api.WhoAmI{}
		}
	} else if err := u.Authenticate([]byte(pass)); err != nil {
		return http.StatusUnauthorized, "invalid username-password pair or user is disabled\n", api.WhoAmI{}
	}
	who := api.WhoAmI{User: u.Name, Admin: u.AllowsCategory("admin")}
	if !who.Admin && !readOnly {
		return http.StatusForbidden, "user " + u.Name + " is not allowed the @admin commands\n", who
	}
	return http.StatusOK, "", who
}

type whoKey struct{}

// whoOf is who the request ctx serves is, as the guard found.
func whoOf(ctx context.Context) api.WhoAmI {
	w, _ := ctx.Value(whoKey{}).(api.WhoAmI)
	return w
}

// credentials finds who the request says it is: a verified client
// certificate's user first (a node's certificate names none: it is on
// every node's disk and vouches for a node, not a person), else Bearer
// USER:PASSWORD or Basic.
func credentials(r *http.Request) (user, pass string, cert, given bool) {
	if r.TLS != nil {
		if u, ok := pki.PeerUser(*r.TLS); ok {
			return u, "", true, true
		}
	}
	if u, p, ok := r.BasicAuth(); ok {
		return u, p, false, true
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		u, p, ok := strings.Cut(tok, ":")
		if !ok {
			u, p = acl.DefaultName, tok // a bare token is the default user's password
		}
		return u, p, false, true
	}
	return "", "", false, false
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
