package ctl

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
)

// Credentials for the admin API: an ACL user allowed @admin and its
// password, sent as Bearer USER:PASSWORD with every request.
type Credentials struct{ User, Password string }

// PasswordEnv names the environment variable ctl reads a password from
// when no --password-file is given.
const PasswordEnv = "KINTSU_PASSWORD"

// LoadCredentials reads the password from file (its first line), else
// from $KINTSU_PASSWORD; with neither, no credentials are sent (a cluster
// without a password, reached from loopback).
func LoadCredentials(user, file string) (Credentials, error) {
	c := Credentials{User: user}
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("--password-file: %w", err)
		}
		pw, _, _ := bytes.Cut(b, []byte("\n"))
		c.Password = string(bytes.TrimSuffix(pw, []byte("\r")))
	default:
		c.Password = os.Getenv(PasswordEnv)
	}
	return c, nil
}

// Use makes every admin API request of this process carry c. ctl runs
// one command per process, so its requests share the default client.
func (c Credentials) Use() {
	if c.Password == "" {
		return
	}
	http.DefaultClient.Transport = bearer{base: http.DefaultClient.Transport, token: c.User + ":" + c.Password}
}

// bearer adds the credentials to each request. With no base of its own
// it sends through http.DefaultTransport as it is at the time of the
// request, so UseTLS may come before or after Use.
type bearer struct {
	base  http.RoundTripper
	token string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	base := b.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}
