package transport

import (
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"
)

// The peer port holds a bounded number of connections: one over the
// bound is closed at once, a connection that never finishes its
// handshake is closed after handshakeTimeout, and its slot serves a
// real peer afterwards.
func TestPeerPortBoundsConnections(t *testing.T) {
	const limit = 3
	addr := serveLimited(t, limit, limit)

	var idle []net.Conn
	for range limit {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		idle = append(idle, c)
	}
	// Each idle connection holds its slot (nothing was read on it yet).
	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if err := readsClosed(over, 3*time.Second); err != nil {
		t.Fatalf("a connection over the bound: %v", err)
	}
	// The idle ones are dropped when their handshake's time is up.
	for i, c := range idle {
		if err := readsClosed(c, handshakeTimeout+5*time.Second); err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
	}
	if err := call(dialer(t, 2, nil, clusterA, addr), "x"); err != nil {
		t.Fatalf("a peer after the idle connections were dropped: %v", err)
	}
}

// readsClosed waits up to d for the server to close c.
func readsClosed(c net.Conn, d time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		var ne net.Error
		switch {
		case err == nil:
			continue // the server's preface or settings: keep reading
		case errors.As(err, &ne) && ne.Timeout():
			return errors.New("still open after " + d.String())
		default: // EOF or a reset: closed
			return nil
		}
	}
}

// One address holds at most its share of the port: one more from it is
// closed at once, while another address is still admitted.
func TestPeerPortBoundsConnectionsPerAddress(t *testing.T) {
	addr := serveLimited(t, 10, 2)
	dialFrom := func(src string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dialFrom("127.0.0.1")
	dialFrom("127.0.0.1")
	if err := readsClosed(dialFrom("127.0.0.1"), 3*time.Second); err != nil {
		t.Fatalf("a third connection from one address: %v", err)
	}
	if err := readsClosed(dialFrom("127.0.0.2"), time.Second); err == nil {
		t.Fatal("another address was refused")
	}
}

// serveLimited serves an insecure node 1 on loopback holding at most
// total connections, perIP from one address, and returns its address.
func serveLimited(t *testing.T, total, perIP int) string {
	t.Helper()
	tr := New(1, slog.New(slog.NewTextHandler(&syncBuf{}, nil)))
	tr.SetClusterID(clusterA)
	rec := &recorder{}
	tr.SetHandlers(rec, rec.call)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr.serve(ln, total, perIP)
	t.Cleanup(tr.Stop)
	return ln.Addr().String()
}
