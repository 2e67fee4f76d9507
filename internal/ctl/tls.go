package ctl

import (
	"net/http"

	"github.com/kintsu/kintsu/internal/pki"
)

// scheme is how ctl reaches admin APIs: https once UseTLS is called.
var scheme = "http"

// adminURL is the URL of path on the admin API at addr.
func adminURL(addr, path string) string { return scheme + "://" + addr + path }

// UseTLS makes every admin API request of this process use HTTPS,
// trusting certsDir's CA and presenting user's client certificate when
// user is not "". With certsDir "" nothing changes. ctl runs one command
// per process, so its requests share the default transport.
func UseTLS(certsDir, user string) error {
	if certsDir == "" {
		return nil
	}
	cfg, err := pki.ClientConfig(certsDir, user)
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	http.DefaultTransport = tr
	scheme = "https"
	return nil
}
