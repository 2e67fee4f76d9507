package admin

import (
	"context"
	"net"
	"net/http"
	"strings"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/pki"
)

// Authentication of the admin API. Every route but /healthz, /readyz and
// /metrics (which reveal no data) needs an ACL user allowed every @admin
// command, shown by either:
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

const authRealm = `Bearer realm="kintsu", Basic realm="kintsu"`

// guard wraps the API's routes with the authentication check.
func (a *API) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if openPaths[r.URL.Path] || a.cfg.Users == nil {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
		t, err := a.cfg.Users(ctx)
		cancel()
		if err != nil {
			http.Error(w, "cannot read the cluster's users to check credentials", http.StatusServiceUnavailable)
			return
		}
		status, msg := authorize(t, r, a.cfg.ProtectedMode)
		switch status {
		case http.StatusOK:
			if h := r.Header.Get("Authorization"); h != "" {
				r = r.WithContext(context.WithValue(r.Context(), authKey{}, h))
			}
			next.ServeHTTP(w, r)
			return
		case http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", authRealm)
		}
		http.Error(w, msg, status)
	})
}

// authorize decides a request: 200 to serve it, else the status and why.
func authorize(t *acl.Table, r *http.Request, protected bool) (int, string) {
	user, pass, cert, given := credentials(r)
	if !t.RequiresPassword() && !given {
		if !protected || isLoopback(r.RemoteAddr) {
			return http.StatusOK, ""
		}
		return http.StatusForbidden, "no password is set for the default user: the admin API serves only loopback clients (set one with --requirepass-file)\n"
	}
	if !given {
		return http.StatusUnauthorized, "credentials required: a client certificate, or Authorization: Bearer USER:PASSWORD\n"
	}
	u, ok := t.User(user)
	if cert {
		if !ok || !u.On {
			return http.StatusUnauthorized, "the certificate names no enabled user\n"
		}
	} else if err := u.Authenticate([]byte(pass)); err != nil {
		return http.StatusUnauthorized, "invalid username-password pair or user is disabled\n"
	}
	if !u.AllowsCategory("admin") {
		return http.StatusForbidden, "user " + u.Name + " is not allowed the @admin commands\n"
	}
	return http.StatusOK, ""
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

type authKey struct{}

// authOf is the Authorization header of the request ctx serves, for the
// calls a handler makes to other nodes' admin APIs on its caller's behalf.
func authOf(ctx context.Context) string {
	h, _ := ctx.Value(authKey{}).(string)
	return h
}
