package raftstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/raftstore"
)

// cutContents reads node's snapshot of group at cut id as user key -> value.
func cutContents(t *testing.T, n *testNode, group uint64, id string) (map[string]string, uint64, bool) {
	t.Helper()
	c, ok := n.eng.OpenCut(group, id)
	if !ok {
		return nil, 0, false
	}
	defer c.Close()
	out := map[string]string{}
	if err := c.Iterate(func(table byte, k, v []byte) error {
		if table == 'd' {
			out[string(k)] = string(v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out, c.Index(), true
}

// settle returns once every cycle that was running when it was called has
// finished on group's leader node: a write to another group is answered
// only by a later cycle, and a cycle sends every answer it does not hold.
func settle(t *testing.T, c *cluster, other uint64) {
	t.Helper()
	if _, err := c.write(other, 9, "set", "settle", "x"); err != nil {
		t.Fatal(err)
	}
}

// The invariant of cut.go: once a cut's entry is applied, the answers of
// later entries and every read wait until the cut is released, while the
// cut's snapshot holds exactly the state after its entry on every replica.
func TestCutHoldsLaterAnswersUntilRelease(t *testing.T) {
	c := newCluster(t, 3, 2, nil)
	const g = 0
	if _, err := c.write(g, 1, "set", "before", "1"); err != nil {
		t.Fatal(err)
	}
	r, err := c.write(g, 1, "cut", "b1", "60000")
	if err != nil {
		t.Fatal(err)
	}
	var index uint64
	if _, err := fmt.Sscanf(r, ":%d", &index); err != nil {
		t.Fatalf("cut reply %q: %v", r, err)
	}

	l := c.leader(g)
	wrote := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := l.eng.Propose(ctx, g, &raftstore.Request{Origin: 2, Seq: 1, Args: toArgs([]string{"set", "after", "2"})})
		wrote <- err
	}()
	read := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		read <- l.eng.ReadBarrier(ctx, g)
	}()
	waitFor(t, "the later write applied on every replica", 10*time.Second, func() bool {
		for _, n := range c.nodes {
			if localGet(t, n, g, "after") != bulk("2") {
				return false
			}
		}
		return true
	})
	settle(t, c, 1)
	select {
	case err := <-wrote:
		t.Fatalf("a write applied after the cut was answered before the release (err %v)", err)
	case err := <-read:
		t.Fatalf("a read was released while the cut was open (err %v)", err)
	default:
	}
	for id, n := range c.nodes {
		got, at, ok := cutContents(t, n, g, "b1")
		if !ok {
			t.Fatalf("node %d has no snapshot of the cut", id)
		}
		if at != index || got["before"] != "s1" || len(got) != 1 {
			t.Fatalf("node %d: cut at %d holds %v; want index %d and only before=s1 (stored form)", id, at, got, index)
		}
	}

	if r, err := c.write(g, 1, "uncut", "b1"); err != nil || r != "+OK\r\n" {
		t.Fatalf("uncut = %q, %v", r, err)
	}
	for _, ch := range []chan error{wrote, read} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("held request failed: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("held request not answered after the release")
		}
	}
	l.eng.DropCut("b1")
	if _, _, ok := cutContents(t, l, g, "b1"); ok {
		t.Fatal("the cut's snapshot outlived DropCut")
	}
}

// A cut nobody releases (its coordinator died) holds only for its lease.
func TestCutLeaseEndsHold(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	if _, err := c.write(0, 1, "cut", "lost", "200"); err != nil {
		t.Fatal(err)
	}
	if r, err := c.write(0, 1, "set", "k", "v"); err != nil || r != "+OK\r\n" {
		t.Fatalf("write after an abandoned cut = %q, %v", r, err)
	}
}

// A replica that restarts with an open cut's marker in its state holds
// too, though it does not apply the cut's entry again.
func TestCutMarkerHoldsAfterRestart(t *testing.T) {
	c := newCluster(t, 3, 2, nil)
	const g = 0
	if _, err := c.write(g, 1, "cut", "b2", "60000"); err != nil {
		t.Fatal(err)
	}
	l := c.leader(g)
	waitFor(t, "the cut applied everywhere", 10*time.Second, func() bool {
		for _, n := range c.nodes {
			if _, _, ok := cutContents(t, n, g, "b2"); !ok {
				return false
			}
		}
		return true
	})
	for id := range c.nodes {
		dir := c.nodes[id].dir
		c.stop(id)
		c.restart(id, dir)
	}
	l = c.leader(g)
	wrote := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := l.eng.Propose(ctx, g, &raftstore.Request{Origin: 3, Seq: 1, Args: toArgs([]string{"set", "k", "v"})})
		wrote <- err
	}()
	waitFor(t, "the write applied on the leader", 10*time.Second, func() bool { return localGet(t, l, g, "k") == bulk("v") })
	settle(t, c, 1)
	select {
	case err := <-wrote:
		t.Fatalf("a restarted replica answered a write during an open cut (err %v)", err)
	default:
	}
	if _, err := c.write(g, 1, "uncut", "b2"); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}
