package statemachine

import "testing"

// The cluster level starts at 0 without a record, only rises, and bad
// levels are refused without a write.
func TestClusterLevelOnlyRises(t *testing.T) {
	m := newMemStore()
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
		{CmdClusterLevel + " 1", "+OK\r\n", 1},
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
