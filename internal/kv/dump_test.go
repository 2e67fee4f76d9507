package kv

import (
	"slices"
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/resp"
)

// dumpOf runs DUMP key and answers the payload ("" for a nil).
func dumpOf(t *testing.T, s *memStore, key string) string {
	t.Helper()
	v, _, err := resp.ParseValue([]byte(apply(t, s, "DUMP", key)))
	if err != nil || v.Kind != '$' {
		t.Fatalf("DUMP %s: %v %q", key, err, v.Str)
	}
	return string(v.Str)
}

// Every type survives DUMP then RESTORE into another key, with what it
// holds, its order (lists) and its expiry (ABSTTL, or a relative TTL).
func TestDumpRestoreRoundTrip(t *testing.T) {
	s := newMemStore()
	apply(t, s, "SET", "str", "hello\x00world")
	apply(t, s, "SET", "num", "12345")
	apply(t, s, "RPUSH", "list", "c", "a", "b", "a")
	apply(t, s, "SADD", "set", "x", "y", "z")
	apply(t, s, "ZADD", "zset", "1.5", "a", "-inf", "b", "0.1", "c")
	apply(t, s, "HSET", "hash", "f1", "v1", "f2", "")
	views := map[string]string{
		"str": "GET", "num": "GET", "list": "LRANGE %s 0 -1", "set": "SMEMBERS", "zset": "ZRANGE %s 0 -1 WITHSCORES", "hash": "HGETALL",
	}
	view := func(cmd, key string) string {
		if !strings.Contains(cmd, "%s") {
			return apply(t, s, cmd, key)
		}
		args := strings.Fields(strings.Replace(cmd, "%s", key, 1))
		return apply(t, s, args...)
	}
	for key, cmd := range views {
		payload := dumpOf(t, s, key)
		if got := apply(t, s, "RESTORE", "copy-"+key, "0", payload); got != "+OK\r\n" {
			t.Fatalf("RESTORE of %s: %q", key, got)
		}
		want, got := view(cmd, key), view(cmd, "copy-"+key)
		if key == "set" || key == "hash" {
			want, got = sortedLines(want, key == "hash"), sortedLines(got, key == "hash")
		}
		if want != got {
			t.Errorf("%s after DUMP/RESTORE: %q, want %q", key, got, want)
		}
		if got := apply(t, s, "TYPE", "copy-"+key); got != apply(t, s, "TYPE", key) {
			t.Errorf("%s restored as %q", key, got)
		}
	}
	payload := dumpOf(t, s, "list")
	// Redis's checks, in Redis's order.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"RESTORE", "list", "0", payload}, "-BUSYKEY Target key name already exists.\r\n"},
		{[]string{"RESTORE", "new", "x", payload}, "-ERR value is not an integer or out of range\r\n"},
		{[]string{"RESTORE", "new", "-1", payload}, "-ERR Invalid TTL value, must be >= 0\r\n"},
		{[]string{"RESTORE", "new", "0", payload[:len(payload)-1] + "x"}, "-ERR DUMP payload version or checksum are wrong\r\n"},
		{[]string{"RESTORE", "new", "0", "garbage"}, "-ERR DUMP payload version or checksum are wrong\r\n"},
		{[]string{"RESTORE", "new", "0", payload, "BOGUS"}, "-ERR syntax error\r\n"},
		{[]string{"RESTORE", "new", "0", payload, "IDLETIME", "-1"}, "-ERR Invalid IDLETIME value, must be >= 0\r\n"},
		{[]string{"RESTORE", "new", "0", payload, "FREQ", "256"}, "-ERR Invalid FREQ value, must be >= 0 and <= 255\r\n"},
		{[]string{"RESTORE", "new", "0", payload, "IDLETIME", "1", "FREQ", "1"}, "-ERR syntax error\r\n"},
		{[]string{"DUMP", "nosuch"}, "$-1\r\n"},
	} {
		if got := apply(t, s, c.args...); got != c.want {
			t.Errorf("%q: %q, want %q", c.args[:2], got, c.want)
		}
	}
	// REPLACE over another type; a TTL relative to now; ABSTTL in the past
	// creates nothing.
	if got := apply(t, s, "RESTORE", "str", "5000", payload, "REPLACE"); got != "+OK\r\n" {
		t.Fatalf("RESTORE REPLACE: %q", got)
	}
	if got := apply(t, s, "PTTL", "str"); got != ":5000\r\n" {
		t.Errorf("PTTL after RESTORE 5000: %q", got)
	}
	if got := apply(t, s, "RESTORE", "gone", "1000", payload, "ABSTTL"); got != "+OK\r\n" || apply(t, s, "EXISTS", "gone") != ":0\r\n" {
		t.Errorf("RESTORE with an ABSTTL in the past: %q, and the key exists", got)
	}
	s.check(t)
}

// sortedLines shows an array reply's elements (pairs: field=value) in
// sorted order, for replies whose order is no property.
func sortedLines(reply string, pairs bool) string {
	v, _, err := resp.ParseValue([]byte(reply))
	if err != nil {
		return reply
	}
	var parts []string
	if pairs {
		for i := 0; i+1 < len(v.Array); i += 2 {
			parts = append(parts, string(v.Array[i].Str)+"="+string(v.Array[i+1].Str))
		}
	} else {
		for _, e := range v.Array {
			parts = append(parts, string(e.Str))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}
