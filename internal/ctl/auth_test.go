package ctl

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// ctl sends the credentials it is given with every admin request: from a
// password file, else from $KINTSU_PASSWORD.
func TestCredentialsAreSent(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	saved := http.DefaultClient.Transport
	defer func() { http.DefaultClient.Transport = saved }()

	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("filepw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(PasswordEnv, "envpw")
	for _, c := range []struct{ file, want string }{{file, "Bearer ops:filepw"}, {"", "Bearer ops:envpw"}} {
		http.DefaultClient.Transport = saved
		creds, err := LoadCredentials("ops", c.file)
		if err != nil {
			t.Fatal(err)
		}
		creds.Use()
		_, err = Fetch(context.Background(), srv.Listener.Addr().String())
		if got != c.want || err == nil {
			t.Errorf("file %q: sent %q (%v), want %q", c.file, got, err, c.want)
		}
	}
}
