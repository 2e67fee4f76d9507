package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/pki"
)

// kubePods runs StatefulSet pods as `kintsu kube init` then `kintsu kube
// start` processes, each with its own volume, as the kubelet would: pod
// ORD is reached at 127.0.7.(ORD+1), the same ports on each, as pods'
// DNS names share ports.
type kubePods struct {
	t                *testing.T
	dir              string
	resp, peer, http int
	running          map[int]*exec.Cmd
	replicas         atomic.Int64 // the StatefulSet's spec.replicas, as the API stub serves it
	marker           atomic.Value // the cluster's marker ConfigMap's body, as created ("" none)
	api              *httptest.Server
	tls              *tls.Config // trusting the cluster's CA
	web              *http.Client
}

func newKubePods(t *testing.T) *kubePods {
	base := 20000 + 10*rand.IntN(200)
	k := &kubePods{t: t, dir: t.TempDir(), resp: base + 5, http: base + 1005, peer: base + 10005, running: map[int]*exec.Cmd{}}
	// As the manifests run it: TLS on every port, each pod's certificate
	// issued by its init container from the CA.
	if err := pki.CreateCA(k.caDir(), false); err != nil {
		t.Fatal(err)
	}
	var err error
	if k.tls, err = pki.ClientConfig(k.caDir(), ""); err != nil {
		t.Fatal(err)
	}
	k.web = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: k.tls}}
	// The Kubernetes API cannot run here: a stub serves the calls the
	// pods make, the StatefulSet's spec.replicas and the cluster's marker.
	k.marker.Store("")
	k.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/apis/apps/v1/namespaces/default/statefulsets/kintsu":
			fmt.Fprintf(w, `{"kind":"StatefulSet","spec":{"replicas":%d}}`, k.replicas.Load())
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/default/configmaps/kintsu-cluster":
			if m := k.marker.Load().(string); m != "" {
				fmt.Fprint(w, m)
				return
			}
			http.Error(w, `{"kind":"Status","reason":"NotFound"}`, http.StatusNotFound)
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/namespaces/default/configmaps":
			b, _ := io.ReadAll(r.Body)
			if !strings.Contains(string(b), `"name":"kintsu-cluster"`) {
				http.Error(w, "unexpected ConfigMap", http.StatusBadRequest)
				return
			}
			if !k.marker.CompareAndSwap("", string(b)) {
				http.Error(w, `{"kind":"Status","reason":"AlreadyExists"}`, http.StatusConflict)
				return
			}
			w.WriteHeader(http.StatusCreated)
		default:
			http.Error(w, "not found", http.StatusNotFound)
		}
	}))
	token := filepath.Join(k.dir, "token")
	if err := os.WriteFile(token, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for ord := range k.running {
			k.stop(ord)
		}
		k.api.Close()
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(k.dir, "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				lines := strings.Split(string(b), "\n")
				if len(lines) > 30 {
					lines = lines[len(lines)-30:]
				}
				t.Logf("--- %s ---\n%s", filepath.Base(l), strings.Join(lines, "\n"))
			}
		}
	})
	return k
}

func (k *kubePods) caDir() string       { return filepath.Join(k.dir, "ca") }
func (k *kubePods) host(ord int) string { return fmt.Sprintf("127.0.7.%d", ord+1) }
func (k *kubePods) httpAddr(ord int) string {
	return fmt.Sprintf("%s:%d", k.host(ord), k.http)
}

func (k *kubePods) flags(ord int) []string {
	vol := filepath.Join(k.dir, fmt.Sprintf("vol-%d", ord))
	if err := os.MkdirAll(vol, 0o755); err != nil {
		k.t.Fatal(err)
	}
	return []string{"--pod", fmt.Sprintf("kintsu-%d", ord), "--namespace", "default", "--host-pattern", "127.0.7.{n}",
		"--volume", vol, "--initial-nodes", "3", "--certs-dir", filepath.Join(k.dir, fmt.Sprintf("certs-%d", ord)),
		"--resp-port", fmt.Sprint(k.resp), "--peer-port", fmt.Sprint(k.peer), "--http-port", fmt.Sprint(k.http),
		"--api-server", k.api.URL, "--api-token-file", filepath.Join(k.dir, "token")}
}

// init runs pod ord's init container and returns what it printed.
func (k *kubePods) init(ord int) string {
	k.t.Helper()
	out, err := exec.Command(binary, append([]string{"kube", "init", "--wait", "60s", "--ca-dir", k.caDir()}, k.flags(ord)...)...).CombinedOutput()
	if err != nil {
		k.t.Fatalf("kube init of pod %d: %v\n%s", ord, err, out)
	}
	return string(out)
}

// start runs pod ord's container.
func (k *kubePods) start(ord int) {
	k.t.Helper()
	args := append([]string{"kube", "start"}, k.flags(ord)...)
	args = append(args, "--bind", k.host(ord), "--", "--partitions", "8", "--replicas", "3")
	log, err := os.OpenFile(filepath.Join(k.dir, fmt.Sprintf("pod-%d.log", ord)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		k.t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	k.running[ord] = cmd
}

// stop terminates pod ord's container as the kubelet does (SIGTERM).
func (k *kubePods) stop(ord int) {
	cmd := k.running[ord]
	delete(k.running, ord)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// prestop runs pod ord's preStop hook.
func (k *kubePods) prestop(ord int) string {
	k.t.Helper()
	args := append([]string{"kube", "prestop", "--timeout", "90s"}, k.flags(ord)...)
	out, err := exec.Command(binary, args...).CombinedOutput()
	if err != nil {
		k.t.Fatalf("kube prestop of pod %d: %v\n%s", ord, err, out)
	}
	return string(out)
}

// status is pod ord's /v1/status, or false while it does not answer.
func (k *kubePods) status(ord int) (api.StatusJSON, bool) {
	var st api.StatusJSON
	resp, err := k.web.Get("https://" + k.httpAddr(ord) + "/v1/status")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st) == nil
}

// nodeState is node id's state as pod ord reports it.
func (k *kubePods) nodeState(ord int, id uint64) string {
	st, ok := k.status(ord)
	if !ok {
		return ""
	}
	for _, n := range st.Nodes {
		if n.ID == id {
			return n.State
		}
	}
	return ""
}

var nodeOfPod = regexp.MustCompile(`is node (\d+):`)

func nodeID(t *testing.T, initOut string) string {
	m := nodeOfPod.FindStringSubmatch(initOut)
	if m == nil {
		t.Fatalf("kube init named no node:\n%s", initOut)
	}
	return m[1]
}

// TestKubeStatefulSetLifecycle plays a StatefulSet's life through the
// pod start logic the manifests in deploy/kubernetes use, with TLS: three pods
// bootstrap at once, a scale-up joins pod 3 as node 4, a rolling restart
// keeps every pod's node, a scale-down's preStop decommissions pod 3's
// node (and a restart's does nothing), and scaling up again over the old
// volume clears it and joins under a new id; after a lost volume with
// every pod down, the fresh volume waits and joins rather than bootstrap.
// Data written at the start is there at the end.
func TestKubeStatefulSetLifecycle(t *testing.T) {
	k := newKubePods(t)
	k.replicas.Store(3)
	outs := make([]string, 3)
	done := make(chan int, 3)
	for ord := range 3 { // podManagementPolicy: Parallel
		go func() { outs[ord] = k.initQuiet(ord); done <- ord }()
	}
	for range 3 {
		<-done
	}
	for ord := range 3 {
		if outs[ord] == "" {
			t.FailNow()
		}
		if got, want := nodeID(t, outs[ord]), fmt.Sprint(ord+1); got != want || !strings.Contains(outs[ord], "bootstrapping") {
			t.Fatalf("pod %d: %q; want node %s bootstrapping", ord, outs[ord], want)
		}
		k.start(ord)
	}
	waitFor(t, "the three pods to be ready", 60*time.Second, func() bool {
		for ord := range 3 {
			if st, ok := k.status(ord); !ok || !st.Ready {
				return false
			}
		}
		return true
	})
	waitFor(t, "the cluster's marker, once every initial member ran", 30*time.Second, func() bool {
		return strings.Contains(k.marker.Load().(string), `"cluster-id"`)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{fmt.Sprintf("%s:%d", k.host(0), k.resp)}, ReadTimeout: 6 * time.Second, TLSConfig: k.tls})
	defer cc.Close()
	for i := range 50 {
		if err := cc.Set(ctx, fmt.Sprintf("kube-%d", i), i, 0).Err(); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}

	k.replicas.Store(4)
	out := k.init(3)
	if nodeID(t, out) != "4" || !strings.Contains(out, "joining") {
		t.Fatalf("scale-up: %q; want pod 3 to join as node 4", out)
	}
	k.start(3)
	waitFor(t, "node 4 to be up", 60*time.Second, func() bool { return k.nodeState(0, 4) == api.NodeUp })

	for ord := range 4 { // a rolling restart: each pod keeps its node
		k.stop(ord)
		if got := nodeID(t, k.init(ord)); got != fmt.Sprint(ord+1) {
			t.Fatalf("pod %d restarted as node %s", ord, got)
		}
		k.start(ord)
		waitFor(t, fmt.Sprintf("pod %d ready again", ord), 60*time.Second, func() bool {
			st, ok := k.status(ord)
			return ok && st.Ready
		})
	}

	k.replicas.Store(3)
	if out := k.prestop(1); !strings.Contains(out, "nothing to do") {
		t.Fatalf("pod 1's preStop on a scale-down to 3: %q", out)
	}
	if out := k.prestop(3); !strings.Contains(out, ": decommissioning node 4") {
		t.Fatalf("pod 3's preStop: %q", out)
	}
	waitFor(t, "pod 0 to see node 4 removed", 60*time.Second, func() bool { return k.nodeState(0, 4) == api.NodeRemoved })
	k.stop(3)
	if s := k.nodeState(0, 2); s != api.NodeUp {
		t.Fatalf("node 2 is %q after its pod's preStop of a restart", s)
	}

	k.replicas.Store(4)
	out = k.init(3)
	if nodeID(t, out) != "1004" || !strings.Contains(out, "removed") {
		t.Fatalf("scale-up over a removed node's volume: %q; want it cleared and node 1004 (4 + kube.IDStride) to join", out)
	}
	k.start(3)
	waitFor(t, "node 1004 to be up", 60*time.Second, func() bool { return k.nodeState(0, 1004) == api.NodeUp })

	// Every pod down, and pod 1's volume lost: the cluster formed, so the
	// fresh volume must not start a cluster of its own (it would vote as
	// node 2 with none of node 2's votes); it waits for a member, then
	// joins under a new id.
	for ord := range 4 {
		k.stop(ord)
	}
	if err := os.RemoveAll(filepath.Join(k.dir, "vol-1")); err != nil {
		t.Fatal(err)
	}
	lone, err := exec.Command(binary, append([]string{"kube", "init", "--wait", "3s", "--ca-dir", k.caDir()}, k.flags(1)...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(lone), "can only join") {
		t.Fatalf("a fresh volume with no member answering, after the cluster formed: %v\n%s", err, lone)
	}
	for _, ord := range []int{0, 2, 3} {
		k.init(ord)
		k.start(ord)
	}
	out = k.init(1)
	if nodeID(t, out) != "1002" || !strings.Contains(out, "joining") {
		t.Fatalf("pod 1's fresh volume: %q; want node 1002 to join", out)
	}
	k.start(1)
	waitFor(t, "node 1002 to be up", 60*time.Second, func() bool { return k.nodeState(0, 1002) == api.NodeUp })
	for i := range 50 {
		v, err := cc.Get(ctx, fmt.Sprintf("kube-%d", i)).Int()
		if err != nil || v != i {
			t.Fatalf("kube-%d: %d, %v", i, v, err)
		}
	}
}

// initQuiet is init for a goroutine: it reports a failure and returns "".
func (k *kubePods) initQuiet(ord int) string {
	out, err := exec.Command(binary, append([]string{"kube", "init", "--wait", "60s", "--ca-dir", k.caDir()}, k.flags(ord)...)...).CombinedOutput()
	if err != nil {
		k.t.Errorf("kube init of pod %d: %v\n%s", ord, err, out)
		return ""
	}
	return string(out)
}
