package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/api"
)

func TestGoRedisThroughEveryNode(t *testing.T) {
	tc := startCluster(t, 3, nil)
	ctx := ctx5(t)
	clients := make([]*redis.Client, 3)
	for i := range clients {
		// Default options: go-redis starts with HELLO 3 and must fall back.
		clients[i] = redis.NewClient(&redis.Options{Addr: tc.respAddr(i)})
		defer clients[i].Close()
	}
	for i, w := range clients {
		key := fmt.Sprint("key-", i)
		if err := w.Set(ctx, key, fmt.Sprint("value-", i), 0).Err(); err != nil {
			t.Fatalf("SET via node %d: %v", i+1, err)
		}
		for j, r := range clients {
			got, err := r.Get(ctx, key).Result()
			if err != nil || got != fmt.Sprint("value-", i) {
				t.Fatalf("GET %s via node %d = %q, %v", key, j+1, got, err)
			}
		}
	}
	c := clients[1]
	check := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
	check("INCR", c.Incr(ctx, "n").Val(), 1)
	check("INCRBY", c.IncrBy(ctx, "n", 41).Val(), 42)
	check("DECR", c.Decr(ctx, "n").Val(), 41)
	check("DECRBY", c.DecrBy(ctx, "n", 1).Val(), 40)
	check("APPEND", c.Append(ctx, "s", "ab").Val(), 2)
	check("APPEND", c.Append(ctx, "s", "cd").Val(), 4)
	check("STRLEN", c.StrLen(ctx, "s").Val(), 4)
	check("GETSET", c.GetSet(ctx, "s", "x").Val(), "abcd")
	check("SETNX existing", c.SetNX(ctx, "s", "y", 0).Val(), false)
	check("SETNX new", c.SetNX(ctx, "{t}fresh", "y", 0).Val(), true)
	check("SET", c.Set(ctx, "{t}other", "y", 0).Val(), "OK")
	check("EXISTS", c.Exists(ctx, "{t}other", "{t}fresh", "{t}missing").Val(), 2)
	check("DEL", c.Del(ctx, "{t}fresh", "{t}missing").Val(), 1)
	check("GET missing", c.Get(ctx, "{t}fresh").Err(), redis.Nil)
	check("MSET", c.MSet(ctx, "{u}a", "1", "{u}b", "2").Val(), "OK")
	check("MGET", c.MGet(ctx, "{u}a", "{u}b", "{u}c").Val(), []any{"1", "2", nil})
	check("SET GET", c.SetArgs(ctx, "s", "z", redis.SetArgs{Get: true}).Val(), "x")
	check("SET XX missing", c.SetXX(ctx, "nothere", "v", 0).Val(), false)
	check("SET NX existing", c.SetArgs(ctx, "s", "q", redis.SetArgs{Mode: "NX"}).Err(), redis.Nil)

	errText := func(err error) string {
		if err == nil {
			return "<nil>"
		}
		return err.Error()
	}
	// a, b, c fall in different partitions of 8: one transaction.
	check("cross-partition MSET", c.MSet(ctx, "a", "1", "b", "2", "c", "3").Val(), "OK")
	check("cross-partition MGET", c.MGet(ctx, "a", "b", "c", "missing").Val(), []any{"1", "2", "3", nil})
	check("cross-partition EXISTS", c.Exists(ctx, "a", "b", "missing", "a").Val(), 3)
	check("cross-partition DEL", c.Del(ctx, "a", "b", "c", "missing").Val(), 3)
	if e := errText(c.Set(ctx, "t", "v", time.Hour).Err()); e != "<nil>" {
		t.Fatalf("SET EX: %s", e)
	}
	if ttl := c.TTL(ctx, "t").Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL after SET EX 3600 = %v", ttl)
	}
	if e := errText(c.Incr(ctx, "s").Err()); e != "ERR value is not an integer or out of range" {
		t.Fatalf("INCR non-number: %s", e)
	}
	if e := errText(c.Do(ctx, "nosuch", "x").Err()); e != "ERR unknown command 'nosuch', with args beginning with: 'x' " {
		t.Fatalf("unknown command: %q", e)
	}
	if e := errText(c.Do(ctx, "get").Err()); e != "ERR wrong number of arguments for 'get' command" {
		t.Fatalf("arity: %q", e)
	}
	keys := []string{"key-0", "key-1", "key-2", "n", "s", "t", "{t}other", "{u}a", "{u}b"}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != int64(len(keys)) {
		t.Fatalf("DBSIZE = %d, %v; want %d", n, err, len(keys))
	}
}

func TestPipelinedRepliesInOrder(t *testing.T) {
	tc := startCluster(t, 3, nil)
	ctx := ctx5(t)
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer c.Close()
	pipe := c.Pipeline()
	var incrs []*redis.IntCmd
	var gets []*redis.StringCmd
	for i := 0; i < 300; i++ {
		key := fmt.Sprint("p", i%7)
		incrs = append(incrs, pipe.Incr(ctx, key))
		gets = append(gets, pipe.Get(ctx, key))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range incrs {
		want := int64(i/7 + 1)
		if incrs[i].Val() != want || gets[i].Val() != fmt.Sprint(want) {
			t.Fatalf("command %d: INCR=%d GET=%q, want %d (pipelined commands on one key must apply in order)", i, incrs[i].Val(), gets[i].Val(), want)
		}
	}
}

// TestProtocolErrorsCloseOnlyThatConnection feeds malformed input to a
// running node: each bad connection gets Redis's protocol error and is
// closed, while another client keeps being served.
func TestProtocolErrorsCloseOnlyThatConnection(t *testing.T) {
	tc := startCluster(t, 3, nil)
	ctx := ctx5(t)
	good := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer good.Close()
	cases := []struct{ name, input, want string }{
		{"garbage multibulk length", "*abc\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"huge declared bulk", "*1\r\n$99999999999\r\n", "-ERR Protocol error: invalid bulk length"},
		{"huge declared array", "*99999999999\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"bulk without dollar", "*1\r\n:12\r\n", "-ERR Protocol error: expected '$', got ':'"},
		{"unbalanced quotes", "SET \"a b\r\n", "-ERR Protocol error: unbalanced quotes in request"},
	}
	for _, tt := range cases {
		conn, err := net.DialTimeout("tcp", tc.respAddr(0), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(tt.input)); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != tt.want {
			t.Fatalf("%s: got %q, %v; want %q", tt.name, line, err, tt.want)
		}
		if _, err := io.ReadAll(conn); err != nil {
			t.Fatalf("%s: connection not closed cleanly: %v", tt.name, err)
		}
		conn.Close()
		if err := good.Set(ctx, "still", "serving", 0).Err(); err != nil {
			t.Fatalf("after %s the node stopped serving: %v", tt.name, err)
		}
	}
	// An unterminated array is answered only when the client gives up:
	// the node must not hold anything but that connection's buffer.
	conn, err := net.Dial("tcp", tc.respAddr(0))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte("*3\r\n$3\r\nSET\r\n$1\r\na\r\n"))
	conn.Close()
	if got, err := good.Get(ctx, "still").Result(); err != nil || got != "serving" {
		t.Fatalf("GET after unterminated array: %q, %v", got, err)
	}
}

func TestAdminEndpoints(t *testing.T) {
	tc := startCluster(t, 3, nil)
	base := "http://" + tc.cfgs[0].HTTPAddr
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer c.Close()
	if err := c.Set(ctx5(t), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz = %d", code)
	}
	code, body := get("/v1/status")
	var st api.StatusJSON
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("/v1/status = %d %s", code, body)
	}
	if st.NodeID != 1 || st.ClusterID == "" || len(st.Nodes) != 3 || len(st.Partitions) != 8 {
		t.Fatalf("status: %+v", st)
	}
	for _, p := range st.Partitions {
		if p.Leader == 0 || len(p.Replicas) != 3 || p.SlotEnd < p.SlotStart {
			t.Fatalf("partition %+v", p)
		}
	}
	// Every node eventually announces its client and admin addresses.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body = get("/v1/status")
		_ = json.Unmarshal([]byte(body), &st)
		ok := true
		for _, n := range st.Nodes {
			ok = ok && n.RESPAddr != "" && n.HTTPAddr != ""
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes never announced addresses: %+v", st.Nodes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, metrics := get("/metrics")
	for _, m := range []string{"kintsu_raft_proposals_total", "kintsu_fsync_seconds", "kintsu_leaders_held", "kintsu_requests_total", "kintsu_raft_elections_total", "kintsu_apply_seconds", "kintsu_raftlog_segments", "kintsu_raftlog_bytes", "kintsu_raftlog_pinned_bytes",
		"kintsu_build_info{", "kintsu_ready 1", `kintsu_partition_leader{partition="0"}`, "kintsu_partition_applied_index{", "kintsu_partitions_leaderless 0",
		"kintsu_partitions_under_replicated 0", `kintsu_nodes{state="up"} 3`, "kintsu_connected_clients", "kintsu_storage_disk_bytes"} {
		if !strings.Contains(metrics, m) {
			t.Fatalf("/metrics lacks %s", m)
		}
	}
}

// TestOversizedValueGetsAnErrorReply: a value over the 16 MiB limit is
// answered with an error, in order among its pipeline's replies, and the
// connection goes on (it was closed mid-write before: redis-py saw a
// broken pipe, not a reason).
func TestOversizedValueGetsAnErrorReply(t *testing.T) {
	tc := startCluster(t, 1, nil)
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), PoolSize: 1, MaxRetries: -1})
	defer c.Close()
	ctx := ctx5(t)
	big := strings.Repeat("v", 20<<20)
	cmds, _ := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "before", "1", 0)
		p.Set(ctx, "big", big, 0)
		p.Set(ctx, "after", "2", 0)
		return nil
	})
	if len(cmds) != 3 || cmds[0].Err() != nil || cmds[2].Err() != nil {
		t.Fatalf("the commands around the big one: %v", cmds)
	}
	if err := cmds[1].Err(); err == nil || !strings.Contains(err.Error(), "exceeds the maximum allowed size") {
		t.Fatalf("the big SET: %v", err)
	}
	if got := c.Get(ctx, "after").Val(); got != "2" {
		t.Fatalf("after the big SET, on the same connection: %q", got)
	}
	if n := c.Exists(ctx, "big").Val(); n != 0 {
		t.Fatal("the dropped SET was applied")
	}
	if st := c.PoolStats(); st.TotalConns != 1 {
		t.Fatalf("%d connections: the first was closed", st.TotalConns)
	}
	// Inside MULTI it spoils the transaction, as any refused command.
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "big", big, 0)
		p.Incr(ctx, "counter")
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "EXECABORT") {
		t.Fatalf("MULTI with a big SET: %v", err)
	}
	if n := c.Exists(ctx, "counter").Val(); n != 0 {
		t.Fatal("a transaction with a dropped command ran")
	}
}
