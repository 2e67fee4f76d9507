package kv

import "testing"

// SORT against Redis 7's replies (checked side by side with redis-server).
func TestSort(t *testing.T) {
	s := newMemStore()
	apply(t, s, "RPUSH", "l", "3", "1", "2", "10", "1.5", "-1")
	apply(t, s, "SADD", "s", "b", "a", "c")
	apply(t, s, "SET", "str", "v")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"SORT", "l"}, rArr(rBulk("-1"), rBulk("1"), rBulk("1.5"), rBulk("2"), rBulk("3"), rBulk("10"))},
		{[]string{"SORT", "l", "DESC", "LIMIT", "1", "2"}, rArr(rBulk("3"), rBulk("2"))},
		{[]string{"SORT", "l", "ALPHA", "LIMIT", "-1", "2"}, rArr(rBulk("-1"), rBulk("1"))},
		{[]string{"SORT", "l", "BY", "nosort", "DESC"}, rArr(rBulk("-1"), rBulk("1.5"), rBulk("10"), rBulk("2"), rBulk("1"), rBulk("3"))},
		{[]string{"SORT", "s"}, "-ERR One or more scores can't be converted into double\r\n"},
		{[]string{"SORT", "s", "BY", "nosort", "STORE", "d"}, ":3\r\n"},
		{[]string{"LRANGE", "d", "0", "-1"}, rArr(rBulk("a"), rBulk("b"), rBulk("c"))},
		{[]string{"SORT", "none", "STORE", "d"}, ":0\r\n"},
		{[]string{"EXISTS", "d"}, ":0\r\n"},
		{[]string{"SORT", "str"}, "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"},
		{[]string{"SORT", "l", "BY", "w_*"}, "-ERR BY option of SORT denied in Cluster mode.\r\n"},
		{[]string{"SORT", "l", "GET", "#"}, "-ERR GET option of SORT denied in Cluster mode.\r\n"},
		{[]string{"SORT", "l", "BOGUS"}, "-ERR syntax error\r\n"},
	} {
		if got := apply(t, s, c.args...); got != c.want {
			t.Errorf("%q: %q, want %q", c.args, got, c.want)
		}
	}
	if got, _ := Apply(s, bargs("SORT_RO", "l", "STORE", "d"), nil); string(got) != "-ERR syntax error\r\n" {
		t.Errorf("SORT_RO STORE: %q", got)
	}
	s.check(t)
}
