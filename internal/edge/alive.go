//go:build linux

package edge

import (
	"crypto/tls"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// connAlive reports whether the client's end of c may still be open: false
// once the peer closed or reset it (POLLRDHUP, POLLHUP, POLLERR), without
// reading what the client may have pipelined after a blocking command.
// A conn that is not a socket, or a failing poll, says alive.
func connAlive(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	alive := true
	// Control fails only on a socket this node already closed (a client
	// evicted, the node retired): no one is there to answer.
	if err := raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		n, err := unix.Poll(fds, 0)
		if err == nil && n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
			alive = false
		}
	}); err != nil {
		return false
	}
	return alive
}
