package kv

import (
	"encoding/hex"
	"fmt"
	"testing"
)

// Values and counts from redis-server 7.0: its sparse encodings of 7 and
// of 300 elements, which Kintsu must read, and the counts it gives.
const (
	redisSparse7   = "48594c4c010000000700000000000000466d80560c80443c84388050b184498c80426d80425a"
	redisSparse300 = "48594c4c010000002b01000000000000278c0f8001804061802784404d8040de80258c4075804060882380218032943c88278031802f8840bb880f80404684406c800280404d84018411801b80178014801d90405f80408d80406c844086800f80407d88249004844050902a8407803880198012880a8028940d80405388409d80407781088007803f8001801c80840484168002810d8009803388178022881180405a80408e800c803684118c1c80158040c180406088368003840880a44048980384404e8420801fb4404390248c1680088004880e80358488108000882a8040558004848006844067801d803b801c80408b844062802b843380388416840980218040bf811a8c0b80088807808418800480404f8040658c407d8003803c841288407881178040698c80058040f5804047803b8014800184208040448c40d784405c80405c8439801e8408841b84407d803788404584098c4063842e8012841f8441199017804060884052881380098818801a80408f80408680188040aa90408e8808843b801880038c406988088c2180078036801f8400801390405288405d801e80409980288004803984268440568c40508040448c4085801a800b884053841484414594404680404b984051802384018040768c405e802c8c35803580404d804051801a8c3a802f803a88178440bd804066880984405c8423900e8040448c407480048402982f841680404c884041843288406680218414802184404a80308c08841384308024842d8811840380278434980494405a8040638040c59c40519c406390404d841b803684407a8040618016803f84398c404588168405801380408d842a840f8440568040568410801f8001843984406c80058c40d38440808c038c40bb841180018417881980188c40528c2a80842b8014a41c80158404803c8120800d800b8c404388048c405b"
)

func TestHyperLogLogCountsAsRedis(t *testing.T) {
	s := newMemStore()
	if got := apply(t, s, "PFADD", "h", "a", "b", "c", "d", "e", "f", "g"); got != ":1\r\n" {
		t.Fatalf("PFADD = %q", got)
	}
	if got := apply(t, s, "PFADD", "h", "a"); got != ":0\r\n" {
		t.Fatalf("PFADD of a seen element = %q, want 0", got)
	}
	if got := apply(t, s, "PFCOUNT", "h"); got != ":7\r\n" {
		t.Fatalf("PFCOUNT = %q, want Redis's 7", got)
	}
	args := []string{"PFADD", "big"}
	for i := 1; i <= 2000; i++ {
		args = append(args, fmt.Sprint("e", i))
	}
	apply(t, s, args...)
	if got := apply(t, s, "PFCOUNT", "big"); got != ":2000\r\n" {
		t.Fatalf("PFCOUNT of 2,000 = %q, want Redis's 2000", got)
	}
	for name, c := range map[string]struct {
		hex  string
		want string
	}{"7": {redisSparse7, ":7\r\n"}, "300": {redisSparse300, ":299\r\n"}} {
		raw, _ := hex.DecodeString(c.hex)
		apply(t, s, "SET", "r"+name, string(raw))
		if got := apply(t, s, "PFCOUNT", "r"+name); got != c.want {
			t.Errorf("PFCOUNT of Redis's sparse value of %s = %q, want %q", name, got, c.want)
		}
	}
	if got := apply(t, s, "PFMERGE", "m", "r7", "h"); got != "+OK\r\n" {
		t.Fatalf("PFMERGE = %q", got)
	}
	if got := apply(t, s, "PFCOUNT", "m"); got != ":7\r\n" { // the same seven elements
		t.Errorf("PFCOUNT of the merge = %q", got)
	}
	apply(t, s, "SET", "str", "not an hll")
	apply(t, s, "SET", "bad", "HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f")
	apply(t, s, "RPUSH", "l", "x")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"PFADD", "str", "a"}, "-" + errNotHLL + "\r\n"},
		{[]string{"PFCOUNT", "h", "str"}, "-" + errNotHLL + "\r\n"},
		{[]string{"PFADD", "l", "a"}, "-" + ErrWrongType + "\r\n"},
		{[]string{"PFCOUNT", "bad"}, "-" + errCorruptHLL + "\r\n"},
		{[]string{"PFADD", "new"}, ":1\r\n"},
		{[]string{"PFCOUNT", "new", "nosuch"}, ":0\r\n"},
	} {
		if got := apply(t, s, c.args...); got != c.want {
			t.Errorf("%q = %q, want %q", c.args, got, c.want)
		}
	}
}
