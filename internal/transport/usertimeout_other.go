//go:build !linux

package transport

import (
	"net"
	"time"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist.
func setUserTimeout(*net.TCPConn, time.Duration) {}
