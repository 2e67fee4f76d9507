package server

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/acl"
)

const testACLRefresh = 50 * time.Millisecond

// Users are the cluster's: a user made through node 1 authenticates on
// node 3 at once (AUTH reads the users linearizably), and deleting it
// through node 1 closes its connection on node 3 within the staleness
// bound (one refresh interval and one request timeout).
func TestACLUsersAcrossNodes(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.ACLRefresh = testACLRefresh })
	ctx := ctx5(t)
	admin := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer admin.Close()
	if err := admin.Do(ctx, "ACL", "SETUSER", "alice", "on", ">wonderland", "~app:*", "+@all", "-@dangerous").Err(); err != nil {
		t.Fatalf("ACL SETUSER on node 1: %v", err)
	}
	// go-redis sends HELLO 3 AUTH first, then falls back to AUTH.
	alice := redis.NewClient(&redis.Options{Addr: tc.respAddr(2), Username: "alice", Password: "wonderland", MaxRetries: -1})
	defer alice.Close()
	if err := alice.Set(ctx, "app:1", "v", 0).Err(); err != nil {
		t.Fatalf("alice on node 3 right after SETUSER on node 1: %v", err)
	}
	if err := alice.Get(ctx, "other").Err(); err == nil || err.Error() != "NOPERM No permissions to access a key" {
		t.Fatalf("alice reading a key outside her patterns: %v", err)
	}
	if who := alice.Do(ctx, "ACL", "WHOAMI").Val(); who != "alice" {
		t.Fatalf("ACL WHOAMI on node 3: %v", who)
	}
	wrong := redis.NewClient(&redis.Options{Addr: tc.respAddr(1), Username: "alice", Password: "nope", MaxRetries: -1})
	defer wrong.Close()
	if err := wrong.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
		t.Fatalf("a wrong password on node 2: %v", err)
	}

	conn, err := net.Dial("tcp", tc.respAddr(2))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	if _, err := conn.Write([]byte("AUTH alice wonderland\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := rd.ReadString('\n'); line != "+OK\r\n" {
		t.Fatalf("raw AUTH on node 3: %q %v", line, err)
	}
	if n, err := admin.Do(ctx, "ACL", "DELUSER", "alice").Int(); err != nil || n != 1 {
		t.Fatalf("ACL DELUSER on node 1: %d %v", n, err)
	}
	// The node's own config, with its defaults filled in: the test's copy
	// leaves RequestTimeout zero, which made the bound one refresh only.
	bound := testACLRefresh + tc.nodes[2].cfg.RequestTimeout
	_ = conn.SetReadDeadline(time.Now().Add(bound))
	if b, err := rd.ReadByte(); err == nil {
		t.Fatalf("alice's connection on node 3 is open %v after her deletion (read %q)", bound, b)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("alice's connection on node 3 was not closed within %v", bound)
	}
	if err := alice.Ping(ctx).Err(); err == nil {
		t.Fatal("a new connection as a deleted user was served")
	}
}

// --requirepass-file: every node requires the password from its first
// client on, and the cluster's default user holds it.
func TestRequirePassFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tc := startCluster(t, 3, func(c *Config) { c.RequirePassFile = file; c.ACLRefresh = testACLRefresh })
	ctx := ctx5(t)
	anon := redis.NewClient(&redis.Options{Addr: tc.respAddr(1), MaxRetries: -1})
	defer anon.Close()
	if err := anon.Get(ctx, "k").Err(); err == nil || err.Error() != "NOAUTH Authentication required." {
		t.Fatalf("no password: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(1), Password: "s3cret"})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("with the password: %v", err)
	}
	// The admin API asks for the same password.
	adminGet := func(path, auth string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+tc.cfgs[2].HTTPAddr+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/v1/status", "", http.StatusUnauthorized},
		{"/v1/status", "Bearer default:wrong", http.StatusUnauthorized},
		{"/v1/status", "Bearer default:s3cret", http.StatusOK},
		{"/readyz", "", http.StatusOK},
		{"/debug/pprof/", "Bearer default:s3cret", http.StatusNotFound},
	} {
		if got := adminGet(c.path, c.auth); got != c.want {
			t.Errorf("admin GET %s (%q): %d, want %d", c.path, c.auth, got, c.want)
		}
	}
	want := acl.Hash([]byte("s3cret"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := c.Do(ctx, "ACL", "GETUSER", "default").Slice()
		if err == nil && len(v) > 3 && len(v[3].([]any)) == 1 && v[3].([]any)[0] == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the default user never held the file's password: %v %v", v, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
