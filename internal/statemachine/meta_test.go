package statemachine

import "testing"

// The cluster level starts at 0 without a record, only rises, and bad
// levels are refused without a write.
func TestClusterLevelOnlyRises(t *testing.T) {
	m := newMemStore()
	m.loose = true
	level := func() int {
		t.Helper()
		n, err := ReadLevel(m)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := level(); n != 0 {
		t.Fatalf("no record: level %d, want 0", n)
	}
	for _, c := range []struct {
		cmd   string
		reply string
		level int
	}{
		{CmdClusterLevel + " 1", "+OK\r\n", 1}, // no members registered
		{CmdClusterLevel + " 0", "+OK\r\n", 1},
		{CmdClusterLevel + " -1", "-ERR bad cluster level\r\n", 1},
		{CmdClusterLevel + " x", "-ERR bad cluster level\r\n", 1},
		{CmdClusterLevel + " 99999999", "-ERR bad cluster level\r\n", 1},
		{CmdClusterLevel + " 3", "+OK\r\n", 3},
		{CmdClusterLevel + " 2", "+OK\r\n", 3},
	} {
		if got := apply(t, m, MetaGroup, c.cmd); got != c.reply {
			t.Errorf("%s: %q, want %q", c.cmd, got, c.reply)
		}
		if n := level(); n != c.level {
			t.Errorf("after %s: level %d, want %d", c.cmd, n, c.level)
		}
	}
}

// A raise names the members its proposer asked: a member registered and
// not named (it joined while they were asked) refuses it, removed ones do
// not count. From level 1 a join must say the joining build's level, and
// one below the cluster's is refused; below level 1 the old form joins.
func TestClusterLevelAndJoins(t *testing.T) {
	m := newMemStore()
	m.loose = true
	for _, c := range []struct{ cmd, reply string }{
		{CmdNodeJoin + " 1 a:1", "+OK\r\n"},
		{CmdNodeJoin + " 2 b:1", "+OK\r\n"},
		{CmdNodeJoin + " 3 c:1", "+OK\r\n"},
		{CmdNodeState + " 3 removed", "+OK\r\n"},
		{CmdNodeJoin + " 4 d:1", "+OK\r\n"}, // joined while 1 and 2 were asked
		{CmdClusterLevel + " 1 1 2", "-ERR node 4 is a member whose build was not checked: cluster level not raised\r\n"},
		{CmdClusterLevel + " 1 1 2 4", "+OK\r\n"},
		{CmdNodeJoin + " 5 e:1", "-ERR the cluster is at level 1 and " + ErrJoinWithoutLevel + "\r\n"},
		{CmdNodeJoin + " 5 e:1 0", "-ERR node 5 runs a build of level 0, older than the cluster's level 1: start it with the cluster's build or a newer one\r\n"},
		{CmdNodeJoin + " 5 e:1 x", "-ERR node 5 runs a build of level x, older than the cluster's level 1: start it with the cluster's build or a newer one\r\n"},
		{CmdNodeJoin + " 5 e:1 1", "+OK\r\n"},
		{CmdNodeJoin + " 6 f:1 2", "+OK\r\n"},
	} {
		if got := apply(t, m, MetaGroup, c.cmd); got != c.reply {
			t.Errorf("%s: %q, want %q", c.cmd, got, c.reply)
		}
	}
	if n, _ := ReadLevel(m); n != 1 {
		t.Fatalf("level %d, want 1", n)
	}
}
