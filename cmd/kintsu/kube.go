package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/ctl"
	"github.com/kintsu/kintsu/internal/kube"
	"github.com/kintsu/kintsu/internal/pki"
)

const kubeUsage = `Usage:
  kintsu kube init    [flags]                  decide this pod's node; write its plan (and certificate)
  kintsu kube start   [flags] [-- server flags] start the node the plan names
  kintsu kube prestop [flags]                  on a scale-down, decommission this pod's node

Runs Kintsu as a Kubernetes StatefulSet (deploy/kubernetes/): init runs as
the pod's init container, start as its container, prestop as its preStop
hook. Every pod's volume records its node id at the first start and keeps
it; a fresh volume bootstraps as one of the first --initial-nodes ordinals
or joins the running cluster under an id never used before; a volume whose
node a scale-down removed is cleared and joins anew. prestop decommissions
the node only when the StatefulSet's replicas no longer include the pod.

`

// kubeOpts are the flags every kube subcommand shares.
type kubeOpts struct {
	pod, namespace, service, domain, hostPattern string
	initial                                      int
	volume                                       string
	respPort, peerPort, httpPort                 int
	certsDir, passwordFile                       string
	apiServer, tokenFile                         string
	set                                          string // the StatefulSet, from the pod's name
	ordinal                                      int
}

func (o *kubeOpts) register(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	fs.StringVar(&o.pod, "pod", envOr("POD_NAME", host), "the pod's name, NAME-ORDINAL (default $POD_NAME, else the host name)")
	fs.StringVar(&o.namespace, "namespace", envOr("POD_NAMESPACE", "default"), "the pod's namespace (default $POD_NAMESPACE)")
	fs.StringVar(&o.service, "service", "kintsu", "the StatefulSet's headless Service")
	fs.StringVar(&o.domain, "cluster-domain", "cluster.local", "the Kubernetes cluster's DNS domain")
	fs.StringVar(&o.hostPattern, "host-pattern", "{pod}.{service}.{namespace}.svc.{domain}",
		"the name a pod is reached at; {pod} {ordinal} {n} (ordinal+1) {service} {namespace} {domain} are replaced")
	fs.IntVar(&o.initial, "initial-nodes", 3, "how many ordinals (0 up) bootstrap the cluster")
	fs.StringVar(&o.volume, "volume", "/data", "the pod's persistent volume: the plan and the data dir (VOLUME/db)")
	fs.IntVar(&o.respPort, "resp-port", 6379, "the RESP (client) port")
	fs.IntVar(&o.peerPort, "peer-port", 17001, "the peer port")
	fs.IntVar(&o.httpPort, "http-port", 8001, "the admin (HTTP) port")
	fs.StringVar(&o.certsDir, "certs-dir", "", "the node's certificates (TLS); init writes them there when --ca-dir is given")
	fs.StringVar(&o.passwordFile, "password-file", "", "the default user's password (the node's --requirepass-file), for admin calls")
	fs.StringVar(&o.apiServer, "api-server", "", "the Kubernetes API's URL (default: the pod's in-cluster API)")
	fs.StringVar(&o.tokenFile, "api-token-file", "", "with --api-server: a file holding a bearer token")
}

// api is the Kubernetes API the pod reads its StatefulSet and the
// cluster's marker from.
func (o *kubeOpts) api() (*kube.API, error) {
	if o.apiServer == "" {
		return kube.InCluster()
	}
	k := &kube.API{Base: strings.TrimSuffix(o.apiServer, "/"), Client: &http.Client{Timeout: 10 * time.Second}}
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return nil, err
		}
		k.Token = strings.TrimSpace(string(b))
	}
	return k, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (o *kubeOpts) resolve() error {
	var err error
	if o.set, o.ordinal, err = kube.Ordinal(o.pod); err != nil {
		return err
	}
	if o.initial < 1 {
		return fmt.Errorf("--initial-nodes %d: want at least 1", o.initial)
	}
	return nil
}

// host is the name the pod of ordinal is reached at.
func (o *kubeOpts) host(ordinal int) string {
	return strings.NewReplacer(
		"{pod}", o.set+"-"+strconv.Itoa(ordinal),
		"{ordinal}", strconv.Itoa(ordinal),
		"{n}", strconv.Itoa(ordinal+1),
		"{service}", o.service,
		"{namespace}", o.namespace,
		"{domain}", o.domain,
	).Replace(o.hostPattern)
}

func (o *kubeOpts) addr(ordinal, port int) string {
	return net.JoinHostPort(o.host(ordinal), strconv.Itoa(port))
}

func (o *kubeOpts) dataDir() string { return filepath.Join(o.volume, "db") }

// useAdmin sets this process's admin calls up: HTTPS trusting caDir's CA
// when TLS is on, and the password when there is one.
func (o *kubeOpts) useAdmin(caDir string) error {
	creds, err := ctl.LoadCredentials("default", o.passwordFile)
	if err != nil {
		return err
	}
	creds.Use()
	return ctl.UseTLS(caDir, "")
}

func runKube(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, kubeUsage)
		return 2
	}
	switch args[0] {
	case "init":
		return runKubeInit(args[1:])
	case "start":
		return runKubeStart(args[1:])
	case "prestop":
		return runKubePrestop(args[1:])
	case "-h", "--help", "help":
		fmt.Print(kubeUsage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "kintsu kube: unknown command %q\n\n%s", args[0], kubeUsage)
	return 2
}

func kubeFlags(name string, o *kubeOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("kube "+name, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, kubeUsage); fs.PrintDefaults() }
	o.register(fs)
	return fs
}

func kubeFail(cmd string, err error) int {
	fmt.Fprintf(os.Stderr, "kintsu kube %s: %v\n", cmd, err)
	return 1
}

// initExtra are kube init's own flags.
type initExtra struct {
	caDir, certHosts string
	wait             time.Duration
}

func initFlags(o *kubeOpts) (*flag.FlagSet, *initExtra) {
	fs := kubeFlags("init", o)
	var x initExtra
	fs.StringVar(&x.caDir, "ca-dir", "", "a directory with the cluster's ca.crt and ca.key: issue this node's certificate into --certs-dir")
	fs.StringVar(&x.certHosts, "cert-hosts", "", "more names for the node's certificate, comma-separated (e.g. the clients' Service)")
	fs.DurationVar(&x.wait, "wait", 5*time.Minute, "how long a pod that must join waits for a member to answer")
	return fs, &x
}

func startFlags(o *kubeOpts) (*flag.FlagSet, *string) {
	fs := kubeFlags("start", o)
	return fs, fs.String("bind", "0.0.0.0", "the address the node listens on")
}

// prestopExtra are kube prestop's own flags.
type prestopExtra struct {
	timeout time.Duration
}

func prestopFlags(o *kubeOpts) (*flag.FlagSet, *prestopExtra) {
	fs := kubeFlags("prestop", o)
	var x prestopExtra
	fs.DurationVar(&x.timeout, "timeout", 9*time.Minute, "how long to wait for the node's replicas to move away (keep it under the pod's terminationGracePeriodSeconds)")
	return fs, &x
}

// runKubeInit decides the pod's node and writes its plan, clearing a
// removed node's data first; with --ca-dir it issues the node's
// certificate, so the CA's key is mounted in the init container only.
func runKubeInit(args []string) int {
	var o kubeOpts
	fs, x := initFlags(&o)
	caDir, extraHosts, wait := &x.caDir, &x.certHosts, &x.wait
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := o.resolve(); err != nil {
		return kubeFail("init", err)
	}
	trust := *caDir
	if trust == "" {
		trust = o.certsDir
	}
	if err := o.useAdmin(trust); err != nil {
		return kubeFail("init", err)
	}
	prev, err := kube.Load(o.volume)
	if err != nil {
		return kubeFail("init", err)
	}
	k, err := o.api()
	if err != nil {
		return kubeFail("init", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *wait)
	defer cancel()
	var d kube.Decision
	for {
		// Whether the cluster formed decides whether a fresh volume may
		// bootstrap: unknown, it may not (asked again below).
		formed, ferr := k.Formed(ctx, o.namespace, o.set)
		desired, _ := k.DesiredReplicas(ctx, o.namespace, o.set) // 0 when unknown: ask the initial ordinals
		in := kube.Input{Ordinal: o.ordinal, Initial: o.initial, Prev: prev, Members: o.members(ctx, desired),
			Formed: formed || ferr != nil, PeerAddr: func(ord int) string { return o.addr(ord, o.peerPort) }}
		d, err = kube.Decide(in)
		if !errors.Is(err, kube.ErrNoCluster) {
			break
		}
		if ferr != nil {
			err = fmt.Errorf("%w; and the cluster's marker could not be read: %v", err, ferr)
		}
		fmt.Fprintf(os.Stderr, "kintsu kube init: %v; asking again\n", err)
		select {
		case <-ctx.Done():
			return kubeFail("init", fmt.Errorf("%w (waited %s)", err, *wait))
		case <-time.After(2 * time.Second):
		}
	}
	if err != nil {
		return kubeFail("init", err)
	}
	fmt.Printf("kintsu kube init: pod %s is node %d: %s\n", o.pod, d.Plan.ID, d.Why)
	if d.Wipe {
		if err := kube.Wipe(o.volume, o.dataDir()); err != nil {
			return kubeFail("init", err)
		}
	}
	if err := kube.Save(o.volume, d.Plan); err != nil {
		return kubeFail("init", err)
	}
	if *caDir != "" {
		if o.certsDir == "" {
			return kubeFail("init", errors.New("--ca-dir needs --certs-dir: where the node's certificate goes"))
		}
		hosts := []string{o.host(o.ordinal), o.pod, "localhost", "127.0.0.1"}
		for h := range strings.SplitSeq(*extraHosts, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hosts = append(hosts, h)
			}
		}
		signer := pki.Signer{CACert: filepath.Join(*caDir, pki.CACert), CAKey: filepath.Join(*caDir, pki.CAKey)}
		if err := pki.CreateNode(o.certsDir, signer, d.Plan.ID, hosts, true); err != nil {
			return kubeFail("init", err)
		}
	}
	return 0
}

// members is the membership the first member to answer reports (a ready
// one preferred), nil when none answers. It asks every ordinal the
// StatefulSet has (desired; 0 when unknown), the initial ones and those
// below this pod's.
func (o *kubeOpts) members(ctx context.Context, desired int) []api.NodeRecord {
	n := max(o.initial, o.ordinal, desired)
	type answer struct {
		st  api.StatusJSON
		err error
	}
	answers := make(chan answer, n)
	asked := 0
	for ord := range n {
		if ord == o.ordinal {
			continue
		}
		asked++
		go func() {
			st, err := ctl.Fetch(ctx, o.addr(ord, o.httpPort))
			answers <- answer{st, err}
		}()
	}
	var found []api.NodeRecord
	for range asked {
		a := <-answers
		if a.err != nil || len(a.st.Nodes) == 0 {
			continue
		}
		if a.st.Ready {
			return a.st.Nodes
		}
		if found == nil {
			found = a.st.Nodes
		}
	}
	return found
}

// runKubeStart runs the node the volume's plan names, listening on every
// interface and advertising the pod's stable name.
func runKubeStart(args []string) int {
	var o kubeOpts
	fs, bind := startFlags(&o)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := o.resolve(); err != nil {
		return kubeFail("start", err)
	}
	p, err := kube.Load(o.volume)
	if err == nil && p == nil {
		err = fmt.Errorf("no plan in %s: run kintsu kube init first (the pod's init container)", o.volume)
	}
	if err != nil {
		return kubeFail("start", err)
	}
	if k, err := o.api(); err != nil {
		fmt.Fprintf(os.Stderr, "kintsu kube start: the Kubernetes API: %v; the cluster's marker is left to the other pods\n", err)
	} else {
		go o.markFormed(k)
	}
	return runServer(append(o.serverArgs(*p, *bind), fs.Args()...))
}

// markFormed creates the cluster's marker once this node sees that every
// initial member has run (kube.Input.Formed), then returns. It asks the
// node it runs beside, with a client of its own (the server shares the
// process).
func (o *kubeOpts) markFormed(k *kube.API) {
	cl := &http.Client{Timeout: 5 * time.Second}
	scheme := "http"
	if o.certsDir != "" {
		cfg, err := pki.ClientConfig(o.certsDir, "")
		if err != nil {
			fmt.Fprintf(os.Stderr, "kintsu kube start: the cluster's marker: %v\n", err)
			return
		}
		cl.Transport = &http.Transport{TLSClientConfig: cfg}
		scheme = "https"
	}
	creds, _ := ctl.LoadCredentials("default", o.passwordFile)
	for {
		time.Sleep(5 * time.Second) // a poll of a condition, not a wait for an event
		req, err := http.NewRequest(http.MethodGet, scheme+"://"+o.addr(o.ordinal, o.httpPort)+"/v1/status", nil)
		if err != nil {
			return
		}
		if creds.Password != "" {
			req.SetBasicAuth(creds.User, creds.Password)
		}
		resp, err := cl.Do(req)
		if err != nil {
			continue
		}
		var st api.StatusJSON
		err = json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&st)
		resp.Body.Close()
		if err != nil || !formed(st, o.initial) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = k.MarkFormed(ctx, o.namespace, o.set, st.ClusterID)
		cancel()
		if err == nil {
			return
		}
		fmt.Fprintf(os.Stderr, "kintsu kube start: the cluster's marker: %v\n", err)
	}
}

// formed: every initial member (ids 1 to initial) has heartbeat.
func formed(st api.StatusJSON, initial int) bool {
	ran := 0
	for _, n := range st.Nodes {
		if n.ID >= 1 && n.ID <= uint64(initial) && n.HeartbeatMS > 0 {
			ran++
		}
	}
	return ran == initial
}

// serverArgs are the flags of kintsu server for plan p.
func (o *kubeOpts) serverArgs(p kube.Plan, bind string) []string {
	listen := func(port int) string { return net.JoinHostPort(bind, strconv.Itoa(port)) }
	args := []string{
		"--id", strconv.FormatUint(p.ID, 10),
		"--data-dir", o.dataDir(),
		"--resp-addr", listen(o.respPort),
		"--peer-addr", listen(o.peerPort),
		"--http-addr", listen(o.httpPort),
		"--advertise-resp-addr", o.addr(o.ordinal, o.respPort),
		"--advertise-peer-addr", o.addr(o.ordinal, o.peerPort),
		"--advertise-http-addr", o.addr(o.ordinal, o.httpPort),
	}
	if p.Mode == kube.Bootstrap {
		args = append(args, "--initial-cluster", p.InitialCluster)
	} else {
		args = append(args, "--join", p.Seed)
	}
	if o.certsDir != "" {
		args = append(args, "--certs-dir", o.certsDir)
	}
	return args
}

// runKubePrestop decommissions the pod's node when a scale-down
// terminates the pod, and does nothing when anything else does (the
// node's own graceful stop then hands its leaderships away).
func runKubePrestop(args []string) int {
	var o kubeOpts
	fs, x := prestopFlags(&o)
	timeout := &x.timeout
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := o.resolve(); err != nil {
		return kubeFail("prestop", err)
	}
	p, err := kube.Load(o.volume)
	if err != nil || p == nil {
		return kubeFail("prestop", fmt.Errorf("no plan on the volume (%v): nothing to decommission", err))
	}
	k, err := o.api()
	if err != nil {
		return kubeFail("prestop", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	want, err := k.DesiredReplicas(ctx, o.namespace, o.set)
	if err != nil {
		// Unknown: a restart is far more common than a scale-down, and a
		// decommission cannot be taken back.
		return kubeFail("prestop", fmt.Errorf("%w; not decommissioning", err))
	}
	if o.ordinal < want {
		fmt.Printf("kintsu kube prestop: %s stays (the StatefulSet wants %d pods): a restart, nothing to do\n", o.pod, want)
		return 0
	}
	if err := o.useAdmin(o.certsDir); err != nil {
		return kubeFail("prestop", err)
	}
	self := o.addr(o.ordinal, o.httpPort) // a name its certificate holds
	st, err := ctl.Fetch(ctx, self)
	if err != nil {
		return kubeFail("prestop", err)
	}
	factor := replicationFactor(st)
	if want < factor {
		// Fewer pods than replicas per partition (a scale to 0 to pause,
		// say): the data has nowhere to go. The node stops as on a
		// restart, and its volume keeps it for when the pods come back.
		fmt.Printf("kintsu kube prestop: the StatefulSet wants %d pods, fewer than the %d replicas of a partition: not decommissioning node %d\n", want, factor, p.ID)
		return 0
	}
	fmt.Printf("kintsu kube prestop: scale-down to %d pods: decommissioning node %d\n", want, p.ID)
	if err := ctl.Decommission(ctx, self, p.ID, os.Stdout, time.Second); err != nil {
		return kubeFail("prestop", err)
	}
	return 0
}

// replicationFactor is how many replicas a partition is meant to have, as
// the node reports it; from a node that does not report it, the count
// most partitions have (not the largest: a partition whose replica is
// moving has one more for a moment).
func replicationFactor(st api.StatusJSON) int {
	if st.ReplicationFactor > 0 {
		return st.ReplicationFactor
	}
	count := map[int]int{}
	factor := 0
	for _, part := range st.Partitions {
		n := len(part.Replicas)
		count[n]++
		if count[n] > count[factor] || count[n] == count[factor] && n < factor {
			factor = n
		}
	}
	return factor
}
