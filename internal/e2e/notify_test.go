package e2e

import (
	"context"
	"testing"
	"time"
)

// TestExpiredEventsReachEveryNode: with notify-keyspace-events set through
// one node, a key that expires is announced ("expired", keyspace and
// keyevent) to subscribers on another node, once the leader's sweep has
// deleted it.
func TestExpiredEventsReachEveryNode(t *testing.T) {
	c := startCluster(t, 3)
	waitTopology(t, c)
	nodes := c.Nodes()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := client(nodes[0].RESPAddr), client(nodes[1].RESPAddr)
	defer a.Close()
	defer b.Close()
	if err := a.ConfigSet(ctx, "notify-keyspace-events", "KEx").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the setting to reach the subscriber's node", 20*time.Second, func() bool {
		return b.ConfigGet(ctx, "notify-keyspace-events").Val()["notify-keyspace-events"] != ""
	})
	sub := b.PSubscribe(ctx, "__key*__:*")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	if err := a.Set(ctx, "soon-gone", "v", 100*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	deadline := time.After(20 * time.Second)
	for len(got) < 2 {
		select {
		case m := <-sub.Channel():
			got[m.Channel] = m.Payload
		case <-deadline:
			t.Fatalf("expired events after 20 s: %v", got)
		}
	}
	if got["__keyevent@0__:expired"] != "soon-gone" || got["__keyspace@0__:soon-gone"] != "expired" {
		t.Fatalf("events %v", got)
	}
}
