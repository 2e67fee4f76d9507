package transport

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// Limits on the peer port. A node's peers hold one connection each, so a
// node never needs many; a stranger may open as many as it likes, and
// each would cost a goroutine and buffers until its handshake failed.
// So the port holds at most maxPeerConns connections at once, and at
// most maxConnsPerIP from one address (so one stranger cannot take every
// place a reconnecting peer needs); one over either is closed as soon as
// it is accepted, not left waiting. A TLS handshake must finish within
// handshakeTimeout, and one connection may carry at most
// maxStreamsPerConn streams at once (a peer's gRPC client waits for a
// free one within its call's deadline).
const (
	maxPeerConns      = 1024
	maxConnsPerIP     = 256
	handshakeTimeout  = 5 * time.Second
	maxStreamsPerConn = 1024
	// peerUserTimeout is how long sent data may go unacknowledged before
	// the kernel drops a peer connection (TCP_USER_TIMEOUT): the
	// keepalive's timeout. gRPC sets it only on a *net.TCPConn, which
	// the limit's wrapper hides, so Accept sets it.
	peerUserTimeout = 3 * time.Second
)

// limitListener accepts at most total connections at once, and perIP
// from one address; one over either is closed at once and logged (at
// most once per refusalEvery).
type limitListener struct {
	net.Listener
	total, perIP int
	t            *Transport

	mu   sync.Mutex
	open int
	byIP map[string]int
}

func newLimitListener(ln net.Listener, total, perIP int, t *Transport) *limitListener {
	return &limitListener{Listener: ln, total: total, perIP: perIP, t: t, byIP: map[string]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := c.RemoteAddr().String()
		if host, _, err := net.SplitHostPort(ip); err == nil {
			ip = host
		}
		l.mu.Lock()
		admit := l.open < l.total && l.byIP[ip] < l.perIP
		if admit {
			l.open++
			l.byIP[ip]++
		}
		l.mu.Unlock()
		if !admit {
			l.t.refusals.logAt(l.t, slog.LevelWarn, "peer connections", "peer port: connection refused, the node holds its most",
				"remote", c.RemoteAddr().String(), "max", l.total, "max_per_address", l.perIP)
			_ = c.Close()
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			setUserTimeout(tc, peerUserTimeout)
		}
		return &limitConn{Conn: c, release: sync.OnceFunc(func() { l.release(ip) })}, nil
	}
}

func (l *limitListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
}

// limitConn gives its slot back when closed (once, however often Close
// is called).
type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
