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
// So the port holds at most maxPeerConns connections at once (one over
// it is closed as soon as it is accepted, not left waiting), a TLS
// handshake must finish within handshakeTimeout, and one connection may
// carry at most maxStreamsPerConn streams at once (a peer's gRPC client
// waits for a free one within its call's deadline).
const (
	maxPeerConns      = 1024
	handshakeTimeout  = 5 * time.Second
	maxStreamsPerConn = 1024
)

// limitListener accepts at most cap(slots) connections at once; one
// over that is closed at once and logged (at most once per
// refusalEvery).
type limitListener struct {
	net.Listener
	slots chan struct{}
	t     *Transport
}

func newLimitListener(ln net.Listener, n int, t *Transport) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), t: t}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.slots })}, nil
		default:
			l.t.refusals.logAt(l.t, slog.LevelWarn, "peer connections", "peer port: connection refused, the node holds its most",
				"remote", c.RemoteAddr().String(), "max", cap(l.slots))
			_ = c.Close()
		}
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
