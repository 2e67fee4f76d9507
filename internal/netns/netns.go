package netns

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// MaxHosts is the largest number of hosts in a Net: 10.X.0.1..253, with
// .254 for the root namespace.
const MaxHosts = 253

// Subnet octets tried for 10.X.0.0/24, starting at one derived from the
// name. 10.0.x and 10.255.x are left alone: they are the most likely to be
// in use elsewhere.
const (
	minOctet = 16
	maxOctet = 250
)

// nftTable is the ruleset in the hub namespace: a bridge-family forward
// chain dropping every IPv4 packet whose (source, destination) pair is in
// the set "cuts". Priority -200 is the bridge family's "filter".
const nftTable = `table bridge kintsu {
	set cuts { type ipv4_addr . ipv4_addr; }
	chain drops {
		type filter hook forward priority -200; policy accept;
		ip saddr . ip daddr @cuts drop
	}
}
`

var validName = regexp.MustCompile(`^[a-z0-9]{1,6}$`)

// ErrClosed is returned by Cut and Heal after Close.
var ErrClosed = errors.New("netns: Net is closed")

// Net is a private network of hosts: one Linux bridge, in a namespace of
// its own joined to the current namespace by a veth pair, and per host a
// network namespace joined to the bridge by a veth pair, with its own IPv4
// address. See the package documentation for the layout. Its methods are
// safe for concurrent use.
type Net struct {
	name  string
	hosts int
	octet int    // X in 10.X.0.0/24
	ip    string // resolved path of ip
	nft   string // resolved path of nft

	mu     sync.Mutex
	closed bool
	lock   *os.File // flock on lockDir/name.lock, held until Close
}

// Create makes n hosts (ids 1..n). name is a short unique prefix (1 to 6
// characters, [a-z0-9]) that starts every namespace and link name. The
// subnet is 10.X.0.0/24 with X derived from name, or the next one not in
// use by the root namespace; host i gets 10.X.0.i and the root namespace
// 10.X.0.254, so processes here (the chaos clients) reach every host.
//
// Leftovers of an earlier run with the same name whose owner has died are
// removed first. On any failure Create removes whatever it made and
// returns an error saying which step failed and why.
func Create(name string, n int) (*Net, error) { return create(name, n, nil) }

// create is Create; tests pass failAt to make building host failAt fail.
func create(name string, n int, failAt func(host uint64) error) (*Net, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("netns: name %q: want 1 to 6 characters of [a-z0-9]", name)
	}
	if n < 1 || n > MaxHosts {
		return nil, fmt.Errorf("netns: %d hosts: want 1..%d", n, MaxHosts)
	}
	ip, err := ipTool()
	if err != nil {
		return nil, err
	}
	nft, err := nftTool()
	if err != nil {
		return nil, err
	}
	lk, err := lockName(name)
	if err != nil {
		return nil, err
	}
	nw := &Net{name: name, hosts: n, ip: ip, nft: nft, lock: lk}
	// We hold the name: anything still carrying it is a crashed run's.
	if err := removeName(ip, name); err != nil {
		lk.Close() // keep the lock file, so a later cleanup retries
		return nil, fmt.Errorf("netns: removing leftovers of an earlier %q: %w", name, err)
	}
	if err := nw.build(failAt); err != nil {
		if cerr := nw.Close(); cerr != nil {
			err = fmt.Errorf("%w (and cleaning up: %v)", err, cerr)
		}
		return nil, fmt.Errorf("netns: creating %q: %w", name, err)
	}
	return nw, nil
}

// Names of namespaces and links (see the package documentation).
func (n *Net) hubNS() string           { return n.name + "-hub" }
func (n *Net) hostNS(id uint64) string { return n.name + "-h" + strconv.FormatUint(id, 10) }
func (n *Net) rootLink() string        { return n.name + "-root" }

// build makes the hub, then every host. Every step runs once; a failure
// leaves cleaning up to Close, which tolerates half-built nets.
func (n *Net) build(failAt func(host uint64) error) error {
	hub, br, up := n.hubNS(), n.name+"-br", n.name+"-up"
	steps := [][]string{
		{"netns", "add", hub},
		{"-n", hub, "link", "set", "dev", "lo", "up"},
		{"-n", hub, "link", "add", "name", br, "type", "bridge"},
		{"-n", hub, "link", "set", "dev", br, "up"},
		// Created here and moved: the root end may exist alone only if
		// this very command fails half-way, and removeName finds it by name.
		{"link", "add", "name", n.rootLink(), "type", "veth", "peer", "name", up, "netns", hub},
		{"-n", hub, "link", "set", "dev", up, "master", br},
		{"-n", hub, "link", "set", "dev", up, "up"},
	}
	for _, s := range steps {
		if err := n.ipRun(s...); err != nil {
			return err
		}
	}
	if err := n.assignSubnet(); err != nil {
		return err
	}
	if _, err := run(strings.NewReader(nftTable), n.ip, "netns", "exec", hub, n.nft, "-f", "-"); err != nil {
		return err
	}
	for id := uint64(1); id <= uint64(n.hosts); id++ {
		if failAt != nil {
			if err := failAt(id); err != nil {
				return err
			}
		}
		ns, port, eth := n.hostNS(id), n.name+"-p"+strconv.FormatUint(id, 10), n.name+"-eth"
		steps := [][]string{
			{"netns", "add", ns},
			{"-n", ns, "link", "set", "dev", "lo", "up"},
			{"-n", hub, "link", "add", "name", port, "type", "veth", "peer", "name", eth, "netns", ns},
			{"-n", hub, "link", "set", "dev", port, "master", br},
			{"-n", hub, "link", "set", "dev", port, "up"},
			{"-n", ns, "addr", "add", n.Addr(id) + "/24", "dev", eth},
			{"-n", ns, "link", "set", "dev", eth, "up"},
		}
		for _, s := range steps {
			if err := n.ipRun(s...); err != nil {
				return err
			}
		}
	}
	return nil
}

func (n *Net) ipRun(args ...string) error {
	_, err := run(nil, append([]string{n.ip}, args...)...)
	return err
}

// assignSubnet picks X and gives the root end 10.X.0.254/24, under the
// machine-wide subnet lock so that two Nets being created at once cannot
// pick the same X.
func (n *Net) assignSubnet() error {
	lk, err := lock(filepath.Join(lockDir, subnetLockName))
	if err != nil {
		return fmt.Errorf("subnet lock: %w", err)
	}
	defer lk.Close() // not unlock: the file is shared by everyone, keep it
	used, err := usedPrefixes(n.ip)
	if err != nil {
		return err
	}
	h := fnv.New32a()
	h.Write([]byte(n.name))
	span := maxOctet - minOctet + 1
	start := int(h.Sum32() % uint32(span))
	for i := range span {
		x := minOctet + (start+i)%span
		p := netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/24", x))
		if overlapsAny(p, used) {
			continue
		}
		n.octet = x
		if err := n.ipRun("addr", "add", n.gateway()+"/24", "dev", n.rootLink()); err != nil {
			return err
		}
		// Up while still holding the lock: its connected route is what the
		// next Create sees.
		return n.ipRun("link", "set", "dev", n.rootLink(), "up")
	}
	return errors.New("no free subnet 10.X.0.0/24 (every X in use by an address or route)")
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if p.Overlaps(u) {
			return true
		}
	}
	return false
}

// usedPrefixes lists the root namespace's IPv4 addresses (with their
// prefixes) and the destinations of its routes in every table, except
// default routes.
func usedPrefixes(ip string) ([]netip.Prefix, error) {
	var used []netip.Prefix
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			ones, _ := ipn.Mask.Size()
			addr, _ := netip.AddrFromSlice(ipn.IP.To4())
			used = append(used, netip.PrefixFrom(addr, ones).Masked())
		}
	}
	out, err := run(nil, ip, "-4", "-j", "route", "show", "table", "all")
	if err != nil {
		return nil, err
	}
	var routes []struct {
		Dst string `json:"dst"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		return nil, fmt.Errorf("parsing ip route output: %w", err)
	}
	for _, r := range routes {
		if r.Dst == "" || r.Dst == "default" {
			continue
		}
		if p, err := netip.ParsePrefix(r.Dst); err == nil {
			if p.Bits() > 0 {
				used = append(used, p.Masked())
			}
		} else if a, err := netip.ParseAddr(r.Dst); err == nil {
			used = append(used, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return used, nil
}

// Name is the prefix the Net was created with.
func (n *Net) Name() string { return n.name }

// Hosts is the number of hosts (ids 1..Hosts()).
func (n *Net) Hosts() int { return n.hosts }

// Addr is host id's IPv4 address, "10.X.0.id".
func (n *Net) Addr(id uint64) string { return fmt.Sprintf("10.%d.0.%d", n.octet, id) }

// Gateway is the root namespace's address on the Net, "10.X.0.254": the
// source address of every connection from this process to a host.
func (n *Net) Gateway() string { return n.gateway() }

func (n *Net) gateway() string { return fmt.Sprintf("10.%d.0.254", n.octet) }

// Namespace is the name of host id's network namespace.
func (n *Net) Namespace(id uint64) string { return n.hostNS(id) }

// Wrap is the argv prefix that runs a command inside host id:
// [path-of-ip, "netns", "exec", namespace]. ip enters the namespace and
// execs the command without forking, so the started pid is the command's
// own and signals sent to it reach the command itself.
func (n *Net) Wrap(id uint64) []string {
	return []string{n.ip, "netns", "exec", n.hostNS(id)}
}

func (n *Net) checkHost(id uint64) error {
	if id < 1 || id > uint64(n.hosts) {
		return fmt.Errorf("netns: no host %d (hosts are 1..%d)", id, n.hosts)
	}
	return nil
}

// Cut drops every IPv4 packet from host `from` to host `to` (one direction;
// see the package documentation for what that means for TCP). Cutting a
// pair that is already cut changes nothing.
func (n *Net) Cut(from, to uint64) error {
	if err := n.checkHost(from); err != nil {
		return err
	}
	if err := n.checkHost(to); err != nil {
		return err
	}
	if from == to {
		return fmt.Errorf("netns: cannot cut host %d from itself (its own traffic never leaves it)", from)
	}
	return n.nftIn(fmt.Sprintf("add element bridge kintsu cuts { %s . %s }", n.Addr(from), n.Addr(to)))
}

// Heal removes every cut.
func (n *Net) Heal() error {
	return n.nftIn("flush set bridge kintsu cuts")
}

// nftIn runs one nft command in the hub namespace. The lock keeps Close
// from removing the namespace under it.
func (n *Net) nftIn(command string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	_, err := run(strings.NewReader(command+"\n"), n.ip, "netns", "exec", n.hubNS(), n.nft, "-f", "-")
	return err
}

// Close kills any process still inside a host, then removes every
// namespace and link of the Net (the bridge, the veth pairs and the
// nftables rules go with them) and releases its name. Stop the processes
// started in the hosts first (launcher StopAll): Close kills stragglers
// with SIGKILL. Calling it again does nothing.
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if err := removeName(n.ip, n.name); err != nil {
		// Keep the lock file: the next CleanupStale or Create of this
		// name finds the leftovers through it and retries.
		n.lock.Close()
		return fmt.Errorf("netns: closing %q: %w", n.name, err)
	}
	unlock(n.lock)
	return nil
}
