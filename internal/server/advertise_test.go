package server

import (
	"strings"
	"testing"
)

// TestAdvertisedAddresses: a node never announces an address that binds
// every interface; explicit advertise flags win; a listener on 0.0.0.0
// takes the peer address's host; the initial-cluster entry must be the
// address others dial.
func TestAdvertisedAddresses(t *testing.T) {
	base := func() Config {
		return Config{
			NodeID: 1, DataDir: "d", Partitions: 8, Replicas: 1, ElectionTicks: 10,
			RESPAddr: "0.0.0.0:6379", PeerAddr: "0.0.0.0:17001", HTTPAddr: "[::]:8001",
			InitialCluster: map[uint64]string{1: "10.0.0.1:17001"},
		}
	}
	c := base()
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("0.0.0.0 listeners with a specific initial-cluster entry: %v", err)
	}
	if got := [3]string{c.AdvertisedRESP(), c.AdvertisedPeer(), c.AdvertisedHTTP()}; got != [3]string{"10.0.0.1:6379", "10.0.0.1:17001", "10.0.0.1:8001"} {
		t.Fatalf("advertised %v", got)
	}
	c.AdvertiseRESPAddr, c.AdvertiseHTTPAddr = "kintsu-1.example:30001", "kintsu-1.example:30081"
	if c.AdvertisedRESP() != "kintsu-1.example:30001" || c.AdvertisedHTTP() != "kintsu-1.example:30081" {
		t.Fatalf("explicit: %s %s", c.AdvertisedRESP(), c.AdvertisedHTTP())
	}

	for _, bad := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.AdvertiseRESPAddr = "0.0.0.0:1" }, "--advertise-resp-addr"},
		{func(c *Config) { c.AdvertiseHTTPAddr = "nohost" }, "want host:port"},
		{func(c *Config) { c.InitialCluster = nil; c.Join = "10.0.0.2:17001" }, "--advertise-peer-addr, the address other nodes dial"},
		{func(c *Config) { c.InitialCluster[1] = "10.0.0.1:17002" }, "but --peer-addr is 0.0.0.0:17001"},
		{func(c *Config) { c.AdvertisePeerAddr = "10.9.9.9:17001" }, "but --advertise-peer-addr is 10.9.9.9:17001"},
	} {
		c := base()
		c.EnsureDefaults()
		bad.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("want an error with %q, got %v", bad.want, err)
		}
	}
	// Joining behind NAT: the advertised peer address is what it joins as.
	c = base()
	c.InitialCluster, c.Join, c.AdvertisePeerAddr = nil, "10.0.0.2:17001", "203.0.113.7:27001"
	c.EnsureDefaults()
	if err := c.Validate(); err != nil || c.AdvertisedPeer() != "203.0.113.7:27001" || c.AdvertisedRESP() != "203.0.113.7:6379" {
		t.Fatalf("join with an advertised peer: %v %s %s", err, c.AdvertisedPeer(), c.AdvertisedRESP())
	}
}
