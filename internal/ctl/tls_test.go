package ctl

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/pki"
)

// ctl reaches a secure cluster's admin API over HTTPS, trusting the
// cluster's CA and presenting a client certificate.
func TestFetchOverTLS(t *testing.T) {
	dir := t.TempDir()
	if err := pki.CreateCA(dir, false); err != nil {
		t.Fatal(err)
	}
	if err := pki.CreateNode(dir, pki.Signer{}, 1, []string{"127.0.0.1"}, false); err != nil {
		t.Fatal(err)
	}
	if err := pki.CreateClient(dir, pki.Signer{}, "ops", false); err != nil {
		t.Fatal(err)
	}
	certs, err := pki.LoadNode(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := pki.PeerUser(*r.TLS)
		users = append(users, u)
		_ = json.NewEncoder(w).Encode(api.StatusJSON{NodeID: 1, ClusterID: "c1"})
	}))
	srv.TLS = certs.ClientServer()
	srv.StartTLS()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	oldTransport, oldScheme := http.DefaultTransport, scheme
	t.Cleanup(func() { http.DefaultTransport, scheme = oldTransport, oldScheme })

	if _, err := Fetch(context.Background(), addr); err == nil {
		t.Fatal("plain HTTP to a TLS admin port succeeded")
	}
	if err := UseTLS(dir, "ops"); err != nil {
		t.Fatal(err)
	}
	st, err := Fetch(context.Background(), addr)
	if err != nil || st.ClusterID != "c1" {
		t.Fatalf("Fetch over TLS: %+v, %v", st, err)
	}
	if len(users) != 1 || users[0] != "ops" {
		t.Fatalf("the admin API saw users %q, want the client certificate's ops", users)
	}
}
