package main

import (
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/config"
	"github.com/kintsu/kintsu/internal/server"
)

// TestShippedConfigLoads: deploy/systemd/kintsu.toml is a configuration
// `kintsu server --config` accepts, and it makes a valid node.
func TestShippedConfigLoads(t *testing.T) {
	var o serverOpts
	fs := o.flags()
	fs.SetOutput(new(strings.Builder))
	config.Register(fs)
	if _, err := config.Load(fs, []string{"--config", "../../deploy/systemd/kintsu.toml"}, nil); err != nil {
		t.Fatal(err)
	}
	var err error
	if o.cfg.InitialCluster, err = server.ParseInitialCluster(o.initialCluster); err != nil {
		t.Fatal(err)
	}
	o.cfg.EnsureDefaults()
	if err := o.cfg.Validate(); err != nil {
		t.Fatalf("the shipped configuration is not a valid node: %v", err)
	}
	if o.cfg.AdvertisedPeer() != "10.0.0.1:17001" || o.cfg.CertsDir == "" {
		t.Fatalf("advertised peer %s, certs %q", o.cfg.AdvertisedPeer(), o.cfg.CertsDir)
	}
}
