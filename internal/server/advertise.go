package server

import (
	"errors"
	"fmt"
	"net"
)

// Advertised addresses: what a node tells others to dial, as etcd's
// --advertise-client-urls and Redis's cluster-announce-ip/port.
//
// Invariant: no address the node announces has an unspecified host
// (0.0.0.0, ::, empty): a client or peer given one would dial itself.

// AdvertisedPeer is the address other nodes reach this one at: the
// --advertise-peer-addr, else this node's --initial-cluster entry, else
// --peer-addr.
func (c *Config) AdvertisedPeer() string {
	if c.AdvertisePeerAddr != "" {
		return c.AdvertisePeerAddr
	}
	if a, ok := c.InitialCluster[c.NodeID]; ok {
		return a
	}
	return c.PeerAddr
}

// AdvertisedRESP is the address clients reach this node at.
func (c *Config) AdvertisedRESP() string { return c.advertised(c.AdvertiseRESPAddr, c.RESPAddr) }

// AdvertisedHTTP is the admin API's address for others.
func (c *Config) AdvertisedHTTP() string { return c.advertised(c.AdvertiseHTTPAddr, c.HTTPAddr) }

// advertised is flag if set, else listen with an unspecified host
// replaced by the advertised peer address's host.
func (c *Config) advertised(flag, listen string) string {
	if flag != "" {
		return flag
	}
	h, p, err := net.SplitHostPort(listen)
	if err != nil || !unspecified(h) {
		return listen
	}
	if ph, _, err := net.SplitHostPort(c.AdvertisedPeer()); err == nil && !unspecified(ph) {
		return net.JoinHostPort(ph, p)
	}
	return listen
}

func unspecified(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

// samePeer reports whether listen is the peer address entry names: the
// same, or the same port on every interface.
func samePeer(entry, listen string) bool {
	if entry == listen {
		return true
	}
	lh, lp, err1 := net.SplitHostPort(listen)
	_, ep, err2 := net.SplitHostPort(entry)
	return err1 == nil && err2 == nil && unspecified(lh) && lp == ep
}

func (c *Config) validateAdvertise() []error {
	var errs []error
	for name, a := range map[string]string{"--advertise-resp-addr": c.AdvertiseRESPAddr, "--advertise-peer-addr": c.AdvertisePeerAddr, "--advertise-http-addr": c.AdvertiseHTTPAddr} {
		if a == "" {
			continue
		}
		h, _, err := net.SplitHostPort(a)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s %q: want host:port", name, a))
		case unspecified(h):
			errs = append(errs, fmt.Errorf("%s %q: name a host others can reach, not every interface", name, a))
		}
	}
	if h, _, err := net.SplitHostPort(c.AdvertisedPeer()); err == nil && unspecified(h) {
		errs = append(errs, errors.New("--peer-addr binds every interface: give --advertise-peer-addr, the address other nodes dial"))
	}
	return errs
}
