package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestPubSubAcrossNodes: a message published through any node reaches
// the subscribers of every node, once each, in the order one publisher
// sent them; PUBLISH counts them; PUBSUB answers for the cluster.
func TestPubSubAcrossNodes(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var subs []*redis.PubSub
	for _, nd := range c.Nodes() {
		cl := client(nd.RESPAddr)
		defer cl.Close()
		ps := cl.Subscribe(ctx, "news")
		if _, err := ps.Receive(ctx); err != nil { // the confirmation
			t.Fatal(err)
		}
		subs = append(subs, ps)
		defer ps.Close()
	}
	pcl := client(c.Nodes()[0].RESPAddr)
	defer pcl.Close()
	psub := pcl.PSubscribe(ctx, "n*")
	defer psub.Close()
	if _, err := psub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	const msgs = 30
	for i := 0; i < msgs; i++ {
		pub := client(c.Nodes()[i%3].RESPAddr)
		n, err := pub.Publish(ctx, "news", fmt.Sprint("m", i)).Result()
		pub.Close()
		if err != nil || n != 4 {
			t.Fatalf("PUBLISH %d reached %d subscribers, %v; want 4", i, n, err)
		}
	}
	for s, ps := range append(subs, psub) {
		for i := 0; i < msgs; i++ {
			m, err := ps.ReceiveMessage(ctx)
			if err != nil {
				t.Fatalf("subscriber %d, message %d: %v", s, i, err)
			}
			if m.Payload != fmt.Sprint("m", i) || m.Channel != "news" {
				t.Fatalf("subscriber %d got %q on %q as message %d", s, m.Payload, m.Channel, i)
			}
		}
	}
	q := client(c.Nodes()[1].RESPAddr)
	defer q.Close()
	if ch, err := q.PubSubChannels(ctx, "*").Result(); err != nil || len(ch) != 1 || ch[0] != "news" {
		t.Fatalf("PUBSUB CHANNELS = %v, %v", ch, err)
	}
	if ns, err := q.PubSubNumSub(ctx, "news", "none").Result(); err != nil || ns["news"] != 3 || ns["none"] != 0 {
		t.Fatalf("PUBSUB NUMSUB = %v, %v", ns, err)
	}
	if np, err := q.PubSubNumPat(ctx).Result(); err != nil || np != 1 {
		t.Fatalf("PUBSUB NUMPAT = %d, %v", np, err)
	}
}

// TestSlowSubscriberIsCutOff: a subscriber that never reads is closed
// once its queue passes the pub/sub output limit; publishers are never
// held up, and the node goes on serving.
func TestSlowSubscriberIsCutOff(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addr := c.Nodes()[1].RESPAddr
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096) // the kernel buffers little on its side
	}
	fmt.Fprintf(raw, "SUBSCRIBE slow\r\n")
	pub := client(c.Nodes()[0].RESPAddr)
	defer pub.Close()
	big := strings.Repeat("x", 1<<20)
	cut := false
	for i := 0; i < 200 && !cut; i++ { // 200 MiB at most, against a 32 MiB limit
		start := time.Now()
		n, err := pub.Publish(ctx, "slow", big).Result()
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("a PUBLISH took %v: the slow subscriber held the publisher up", d)
		}
		cut = n == 0 && i > 0
	}
	if !cut {
		t.Fatal("the subscriber that never reads was never cut off")
	}
	ok := client(addr)
	defer ok.Close()
	if err := ok.Ping(ctx).Err(); err != nil {
		t.Fatalf("the node after cutting off a subscriber: %v", err)
	}
}

// TestSubscribeAfterPipelinedReplies: replies to commands pipelined
// before a SUBSCRIBE (a MULTI's among them) come before its
// confirmation, in order.
func TestSubscribeAfterPipelinedReplies(t *testing.T) {
	c := startCluster(t, 3)
	raw, err := net.Dial("tcp", c.Nodes()[0].RESPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(raw, "PING\r\nMULTI\r\nSET {p}a 1\r\nEXEC\r\nSUBSCRIBE news\r\n")
	want := "+PONG\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
	got := make([]byte, 0, len(want))
	buf := make([]byte, 256)
	for len(got) < len(want) {
		n, err := raw.Read(buf)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != want {
		t.Fatalf("replies %q, want %q", got, want)
	}
}
