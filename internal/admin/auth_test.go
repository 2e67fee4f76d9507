package admin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/api"
	_ "github.com/kintsu/kintsu/internal/edge" // registers ACL, CONFIG, ...: the @admin commands
	"github.com/kintsu/kintsu/internal/pki"
)

// usersWith is a users table: the default user with a password, an
// admin and a user allowed only reads.
func usersWith(t *testing.T) *acl.Table {
	t.Helper()
	tb := acl.NewTable()
	var err error
	for _, u := range []struct {
		name  string
		rules []string
	}{
		{"default", []string{"resetpass", ">rootpw"}},
		{"ops", []string{"on", ">opspw", "+@all", "~*"}},
		{"reader", []string{"on", ">readpw", "+@read", "~*"}},
		{"certops", []string{"on", "+@admin"}},
	} {
		rules := make([][]byte, len(u.rules))
		for i, r := range u.rules {
			rules[i] = []byte(r)
		}
		if tb, err = tb.SetUser(u.name, rules); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

func call(t *testing.T, h http.Handler, path string, prep func(r *http.Request)) (int, http.Header) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = "192.0.2.9:4444" // not loopback
	if prep != nil {
		prep(req)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Result().Header
}

func bearer(v string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+v) }
}

func TestAdminNeedsCredentials(t *testing.T) {
	f := newFixture(t)
	tb := usersWith(t)
	f.cfg.Users = func(context.Context) (*acl.Table, error) { return tb, nil }
	f.cfg.EnablePprof = true // a GET route that needs @admin
	f.cfg.Events = func(context.Context, int) []api.Event { return nil }
	h := New(f.cfg).Handler()

	code, hdr := call(t, h, "/v1/status", nil)
	if code != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no credentials: %d %q, want 401 with WWW-Authenticate", code, hdr.Get("WWW-Authenticate"))
	}
	for _, c := range []struct {
		what string
		prep func(*http.Request)
		want int
	}{
		{"wrong password", bearer("ops:nope"), http.StatusUnauthorized},
		{"unknown user", bearer("ghost:opspw"), http.StatusUnauthorized},
		{"a user without @admin", bearer("reader:readpw"), http.StatusForbidden},
		{"an admin user", bearer("ops:opspw"), http.StatusOK},
		{"the default user's bare password", bearer("rootpw"), http.StatusOK},
		{"basic credentials", func(r *http.Request) { r.SetBasicAuth("ops", "opspw") }, http.StatusOK},
		{"basic, wrong", func(r *http.Request) {
			r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("ops:x")))
		}, http.StatusUnauthorized},
		{"a verified certificate of an admin user", withCert("certops"), http.StatusOK},
		{"a verified certificate of a non-admin user", withCert("reader"), http.StatusForbidden},
		{"a verified certificate of no user", withCert("ghost"), http.StatusUnauthorized},
		// A node's certificate is on every node's disk: it names no user,
		// whatever its common name.
		{"a node's certificate", func(r *http.Request) {
			r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: "certops"}, URIs: []*url.URL{pki.NodeURI(1)}}}}}
		}, http.StatusUnauthorized},
	} {
		if code, _ := call(t, h, "/debug/pprof/", c.prep); code != c.want {
			t.Errorf("%s: %d, want %d", c.what, code, c.want)
		}
	}
	// The console's reads need any enabled user, not an admin; its page
	// needs none (it holds no data and asks for credentials itself).
	for _, c := range []struct {
		what, path string
		prep       func(*http.Request)
		want       int
	}{
		{"status, a reader", "/v1/status", bearer("reader:readpw"), http.StatusOK},
		{"status, a reader's certificate", "/v1/status", withCert("reader"), http.StatusOK},
		{"status, wrong password", "/v1/status", bearer("reader:nope"), http.StatusUnauthorized},
		{"events, a reader", "/v1/events", bearer("reader:readpw"), http.StatusOK},
		{"the console's page", "/console/", nil, http.StatusOK},
		{"the console's script", "/console/console.js", nil, http.StatusOK},
		{"the root", "/", nil, http.StatusFound},
	} {
		if code, _ := call(t, h, c.path, c.prep); code != c.want {
			t.Errorf("%s: %d, want %d", c.what, code, c.want)
		}
	}
	post := func(path string, prep func(*http.Request)) int {
		req := httptest.NewRequest(http.MethodPost, path, nil)
		req.RemoteAddr = "192.0.2.9:4444"
		prep(req)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	// Another site's page cannot make a browser change the cluster, even
	// with an admin's credentials attached.
	for _, hdr := range [][2]string{{"Origin", "https://evil.example"}, {"Sec-Fetch-Site", "cross-site"}} {
		if code := post("/v1/nodes/2/decommission", func(r *http.Request) { bearer("ops:opspw")(r); r.Header.Set(hdr[0], hdr[1]) }); code != http.StatusForbidden {
			t.Errorf("a cross-site POST (%s): %d, want 403", hdr[0], code)
		}
	}
	if code := post("/v1/nodes/2/decommission", bearer("reader:readpw")); code != http.StatusForbidden {
		t.Errorf("a reader's decommission: %d, want 403", code)
	}
	if code := post("/console/", bearer("reader:readpw")); code != http.StatusForbidden {
		t.Errorf("a reader's POST to the console's path: %d, want 403", code)
	}
	req := httptest.NewRequest(http.MethodGet, "/v1/whoami", nil)
	req.RemoteAddr = "192.0.2.9:4444"
	req.Header.Set("Authorization", "Bearer reader:readpw")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got := strings.TrimSpace(rec.Body.String()); got != `{"user":"reader","admin":false}` {
		t.Errorf("whoami of a reader: %s", got)
	}
	// The console's own calls get no WWW-Authenticate: the browser must
	// not pop up its own prompt over the console's sign-in form.
	if code, hdr := call(t, h, "/v1/status", func(r *http.Request) { r.Header.Set(consoleHeader, "1") }); code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") != "" {
		t.Errorf("the console's call without credentials: %d %q", code, hdr.Get("WWW-Authenticate"))
	}
	// Probes and scrapers need no credentials, and learn no data.
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := call(t, h, p, nil); code != http.StatusOK {
			t.Errorf("%s without credentials: %d", p, code)
		}
	}
	// pprof exists only with --enable-pprof.
	f.cfg.EnablePprof = false
	if code, _ := call(t, New(f.cfg).Handler(), "/debug/pprof/", bearer("ops:opspw")); code != http.StatusNotFound {
		t.Errorf("pprof without the flag: %d, want 404", code)
	}
	f.cfg.EnablePprof = true
	if code, _ := call(t, New(f.cfg).Handler(), "/debug/pprof/", bearer("ops:opspw")); code != http.StatusOK {
		t.Errorf("pprof with the flag, as an admin: %d", code)
	}
	if code, _ := call(t, New(f.cfg).Handler(), "/debug/pprof/", nil); code != http.StatusUnauthorized {
		t.Errorf("pprof with the flag, no credentials: %d", code)
	}
}

func withCert(cn string) func(*http.Request) {
	return func(r *http.Request) {
		r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn}}}}}
	}
}

// With no password for the default user the API stays open to loopback
// clients, as it was, and refuses others in protected mode.
func TestAdminInsecureMode(t *testing.T) {
	f := newFixture(t)
	f.cfg.Users = func(context.Context) (*acl.Table, error) { return acl.NewTable(), nil }
	f.cfg.ProtectedMode = true
	h := New(f.cfg).Handler()
	if code, _ := call(t, h, "/v1/status", func(r *http.Request) { r.RemoteAddr = "127.0.0.1:5000" }); code != http.StatusOK {
		t.Errorf("loopback, no password set: %d", code)
	}
	if code, _ := call(t, h, "/v1/status", nil); code != http.StatusForbidden {
		t.Errorf("remote, no password set, protected mode: %d", code)
	}
	f.cfg.ProtectedMode = false
	if code, _ := call(t, New(f.cfg).Handler(), "/v1/status", nil); code != http.StatusOK {
		t.Errorf("remote, no password set, protected mode off: %d", code)
	}
}
