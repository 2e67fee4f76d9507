package edge

import (
	"net"
	"testing"
	"time"
)

// TestConnAliveSeesThePeerLeave: a blocked command's check sees a client's
// close without reading anything the client sent.
func TestConnAliveSeesThePeerLeave(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if _, err := client.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	if !connAlive(server) {
		t.Fatal("an open connection with unread input looks closed")
	}
	client.Close()
	deadline := time.Now().Add(5 * time.Second)
	for connAlive(server) {
		if time.Now().After(deadline) {
			t.Fatal("the peer's close was never seen")
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
	buf := make([]byte, 6)
	if n, _ := server.Read(buf); string(buf[:n]) != "PING\r\n" {
		t.Fatalf("the check consumed the client's input: read %q", buf[:n])
	}
}
