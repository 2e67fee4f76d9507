package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/pki"
	"github.com/kintsu/kintsu/internal/transport"
)

// secureCerts makes a CA in a temporary directory and node 1..n's certs
// directories under it.
func secureCerts(t *testing.T, n int) string {
	t.Helper()
	root := t.TempDir()
	if err := pki.CreateCA(root, false); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if err := pki.CreateNode(nodeCerts(root, uint64(i)), pki.Signer{CACert: filepath.Join(root, pki.CACert), CAKey: filepath.Join(root, pki.CAKey)}, uint64(i), []string{"127.0.0.1"}, false); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func nodeCerts(root string, id uint64) string { return filepath.Join(root, fmt.Sprintf("node-%d", id)) }

func TestSecureClusterServesTLSAndRefusesPlaintext(t *testing.T) {
	root := secureCerts(t, 3)
	tc := startCluster(t, 3, func(c *Config) { c.CertsDir = nodeCerts(root, c.NodeID) })
	clientTLS, err := pki.ClientConfig(root, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctx5(t)
	c1 := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), Protocol: 2, TLSConfig: clientTLS})
	defer c1.Close()
	if err := c1.Set(ctx, "greeting", "hello", 0).Err(); err != nil {
		t.Fatalf("SET over TLS: %v", err)
	}
	c2 := redis.NewClient(&redis.Options{Addr: tc.respAddr(1), Protocol: 2, TLSConfig: clientTLS})
	defer c2.Close()
	if v, err := c2.Get(ctx, "greeting").Result(); err != nil || v != "hello" {
		t.Fatalf("GET over TLS on another node: %q, %v", v, err)
	}

	plain := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), Protocol: 2, MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second})
	defer plain.Close()
	if v, err := plain.Get(ctx, "greeting").Result(); err == nil {
		t.Fatalf("a plaintext client read %q from the TLS port", v)
	}

	// The admin port is HTTPS; plain HTTP gets no status.
	https := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS}}
	resp, err := https.Get("https://" + tc.cfgs[0].HTTPAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz over HTTPS: %s", resp.Status)
	}
	resp, err = (&http.Client{Timeout: 5 * time.Second}).Get("http://" + tc.cfgs[0].HTTPAddr + "/v1/status")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("the admin API answered plain HTTP")
		}
	}
}

// A member's certificate admits that member only: node 2 cannot make node
// 9 join, and a node of another CA cannot join at all.
func TestJoinNeedsTheJoinersOwnCertificate(t *testing.T) {
	root := secureCerts(t, 3)
	tc := startCluster(t, 3, func(c *Config) { c.CertsDir = nodeCerts(root, c.NodeID) })

	join := func(certs *pki.Certs, as uint64) error {
		tr := transport.New(certs.NodeID, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
		defer tr.Stop()
		tr.SetTLS(transport.TLS{Server: certs.PeerServer(), Client: func(uint64) *tls.Config { return certs.PeerClient(0) }})
		tr.SetPeer(1, tc.cfgs[0].PeerAddr)
		body, _ := json.Marshal(api.NodeRecord{ID: as, PeerAddr: "127.0.0.1:1"})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := tr.Call(ctx, 1, control.MethodJoin, body)
		return err
	}
	n2, err := pki.LoadNode(nodeCerts(root, 2), 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := join(n2, 9); err == nil || !strings.Contains(err.Error(), "cannot join as node 9") {
		t.Fatalf("node 2's certificate joining as node 9: %v, want refused", err)
	}
	other := secureCerts(t, 9)
	n9, err := pki.LoadNode(nodeCerts(other, 9), 9)
	if err != nil {
		t.Fatal(err)
	}
	if err := join(n9, 9); err == nil {
		t.Fatal("a node of another CA joined")
	}
	if _, ok := tc.nodes[0].nodeRecord(9); ok {
		t.Fatal("node 9 is in the registry")
	}
}

// A node with a certificate of the cluster's CA joins a secure cluster:
// the join goes without a cluster id, everything after it with the one
// the answer brought.
func TestSecureNodeJoins(t *testing.T) {
	root := secureCerts(t, 4)
	tc := startCluster(t, 3, func(c *Config) { c.CertsDir = nodeCerts(root, c.NodeID) })
	ls := &Listeners{Peer: listen(t), RESP: listen(t), HTTP: listen(t)}
	cfg := tc.cfgs[0]
	cfg.NodeID, cfg.DataDir, cfg.InitialCluster, cfg.Join, cfg.CertsDir = 4, t.TempDir(), nil, tc.cfgs[0].PeerAddr, nodeCerts(root, 4)
	cfg.RESPAddr, cfg.PeerAddr, cfg.HTTPAddr, cfg.Listeners = ls.RESP.Addr().String(), ls.Peer.Addr().String(), ls.HTTP.Addr().String(), ls
	n4, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc.nodes, tc.cfgs = append(tc.nodes, n4), append(tc.cfgs, cfg)
	waitFor(t, "node 4's heartbeat to reach the metadata", 20*time.Second, func() bool {
		rec, ok := tc.nodes[0].nodeRecord(4)
		return ok && rec.RESPAddr == cfg.RESPAddr
	})
	if got, want := n4.layout.Ident.ClusterID, tc.nodes[0].layout.Ident.ClusterID; got != want {
		t.Fatalf("node 4 is in cluster %s, want %s", got, want)
	}
}

// logBuf collects a node's log lines.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Nodes started with disagreeing flags compute different cluster ids;
// they refuse each other's traffic and say so at ERROR, instead of
// forming clusters that exchange raft messages.
func TestMisconfiguredNodeIsRefusedByClusterID(t *testing.T) {
	var lss []*Listeners
	ic := map[uint64]string{}
	for i := 1; i <= 3; i++ {
		ls := &Listeners{Peer: listen(t), RESP: listen(t), HTTP: listen(t)}
		lss = append(lss, ls)
		ic[uint64(i)] = ls.Peer.Addr().String()
	}
	logs := make([]*logBuf, 3)
	var nodes []*Node
	for i := 1; i <= 3; i++ {
		ls := lss[i-1]
		logs[i-1] = &logBuf{}
		cfg := Config{
			NodeID: uint64(i), DataDir: t.TempDir(), InitialCluster: ic, Partitions: 8, Replicas: 3,
			RESPAddr: ls.RESP.Addr().String(), PeerAddr: ls.Peer.Addr().String(), HTTPAddr: ls.HTTP.Addr().String(),
			TickInterval: 20 * time.Millisecond, Listeners: ls, EmptyDirCheckTimeout: -1,
			Logger: slog.New(slog.NewTextHandler(logs[i-1], &slog.HandlerOptions{Level: slog.LevelError})),
		}
		if i == 3 {
			cfg.Partitions = 16 // the careless operator
		}
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	defer func() {
		for _, n := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = n.Stop(ctx)
			cancel()
		}
	}()
	good, bad := nodes[0].layout.Ident.ClusterID, nodes[2].layout.Ident.ClusterID
	if good == bad {
		t.Fatal("different --partitions gave the same cluster id")
	}
	want := fmt.Sprintf("local-cluster-id=%s remote-cluster-id=%s", good, bad)
	waitFor(t, "node 1 to refuse node 3's traffic", 10*time.Second, func() bool { return strings.Contains(logs[0].String(), want) })
	if !strings.Contains(logs[0].String(), "level=ERROR msg=\"cluster ID mismatch") {
		t.Errorf("the refusal is not an ERROR saying cluster ID mismatch:\n%s", logs[0])
	}
}

// A certificate of the cluster's CA lets a node join, not act as a member:
// before joining, node 9's calls to read, write or change replicas are
// refused (they used to be served to anyone); a member's are served.
func TestPeerCallsNeedAMember(t *testing.T) {
	root := secureCerts(t, 3)
	tc := startCluster(t, 3, func(c *Config) { c.CertsDir = nodeCerts(root, c.NodeID) })
	if err := pki.CreateNode(nodeCerts(root, 9), pki.Signer{CACert: filepath.Join(root, pki.CACert), CAKey: filepath.Join(root, pki.CAKey)}, 9, []string{"127.0.0.1"}, false); err != nil {
		t.Fatal(err)
	}
	call := func(as uint64, method string) error {
		certs, err := pki.LoadNode(nodeCerts(root, as), as)
		if err != nil {
			t.Fatal(err)
		}
		tr := transport.New(as, slog.New(slog.NewTextHandler(io.Discard, nil)))
		defer tr.Stop()
		tr.SetTLS(transport.TLS{Server: certs.PeerServer(), Client: func(uint64) *tls.Config { return certs.PeerClient(0) }})
		tr.SetClusterID(tc.nodes[0].layout.Ident.ClusterID)
		tr.SetPeer(1, tc.cfgs[0].PeerAddr)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = tr.Call(ctx, 1, method, []byte{0xff}) // a body no method accepts
		return err
	}
	for _, m := range []string{"w", "r", "l", control.MethodChangeReplicas, control.MethodGroupInfo} {
		if err := call(9, m); status.Code(err) != codes.PermissionDenied {
			t.Errorf("call %q from non-member node 9: %v, want PermissionDenied", m, err)
		}
		if err := call(2, m); status.Code(err) == codes.PermissionDenied {
			t.Errorf("call %q from member node 2 refused: %v", m, err)
		}
	}
}
