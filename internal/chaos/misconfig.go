package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The misconfig nemesis is the operator's mistake rather than the
// machine's: a process that believes it belongs to the cluster but was
// given other cluster flags. Either
//   - a foreign node: a new process whose --initial-cluster names the
//     cluster's nodes and itself, with another partition count, so its
//     cluster id differs. The members must refuse every call and stream
//     it makes (and say so at ERROR: "cluster ID mismatch") while serving
//     their clients as before; or
//   - a member restarted with a wrong --partitions over its own data dir:
//     it must refuse to start, touching nothing, and then starts again
//     with its own flags.
// Nothing acknowledged may be lost either way (the run's checks).

// misconfigVariants: how planMisconfig picks.
const (
	misconfigForeign = iota
	misconfigRestart
)

// misconfigStartTimeout bounds how long a member started with wrong flags
// may take to refuse.
const misconfigStartTimeout = 15 * time.Second

func (n *nemesis) misconfig(ctx context.Context, f *Fault, variant int, length time.Duration) error {
	if n.net != nil {
		return errors.New("misconfig needs --network hooks (the foreign process runs on loopback)")
	}
	if !n.c.Running(f.Node) {
		return fmt.Errorf("node %d is not running", f.Node)
	}
	if variant == misconfigRestart {
		return n.misconfigRestart(ctx, f)
	}
	return n.misconfigForeign(ctx, f, length)
}

// misconfigForeign runs a foreign node for length and counts the members
// that refused it by cluster id.
func (n *nemesis) misconfigForeign(ctx context.Context, f *Fault, length time.Duration) error {
	args := n.c.Args(f.Node)
	id := 900 + f.Node
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	dir := filepath.Join(filepath.Dir(filepath.Dir(n.c.Node(f.Node).DataDir)), fmt.Sprintf("misconfig-%d-%d", id, n.rec.nowMS()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	peer := fmt.Sprintf("127.0.0.1:%d", ports[1])
	ic := flagValue(args, "--initial-cluster")
	if ic == "" { // a node that joined: name every running member
		var parts []string
		for _, nd := range n.c.Nodes() {
			parts = append(parts, fmt.Sprintf("%d=%s", nd.ID, nd.PeerAddr))
		}
		ic = strings.Join(parts, ",")
	}
	parts := 16
	if p, err := strconv.Atoi(flagValue(args, "--partitions")); err == nil {
		parts = p
	}
	foreign := []string{args[0], "server", "--insecure", "--id", strconv.FormatUint(id, 10),
		"--data-dir", filepath.Join(dir, "data"),
		"--resp-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--peer-addr", peer, "--http-addr", fmt.Sprintf("127.0.0.1:%d", ports[2]),
		"--initial-cluster", ic + fmt.Sprintf(",%d=%s", id, peer),
		"--partitions", strconv.Itoa(parts * 2), "--empty-dir-check-timeout", "-1s"}
	logs := n.logSizes()
	log, err := os.Create(filepath.Join(dir, "kintsu.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	pctx, cancel := context.WithTimeout(ctx, length+10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(pctx, foreign[0], foreign[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	f.StartMS = n.rec.nowMS()
	f.Node = 0
	n.log("misconfig: foreign node %d started with --partitions %d against the cluster's peers", id, parts*2)
	sleep(ctx, length)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	f.EndMS = n.rec.nowMS()
	refused := n.logsSince(logs, "cluster ID mismatch")
	f.Detail = fmt.Sprintf("foreign node %d with --partitions %d: refused by cluster id on %d of %d nodes", id, parts*2, len(refused), len(logs))
	if runCerts() != "" {
		// It runs without a certificate: a secure cluster refuses it at
		// the handshake, before any frame names a cluster id.
		tls := n.logsSince(logs, "refused a peer connection: TLS handshake failed")
		f.Detail += fmt.Sprintf(", at the TLS handshake on %d", len(tls))
	}
	n.log("misconfig: %s", f.Detail)
	return nil
}

// misconfigRestart stops a member and starts it with a wrong partition
// count over its own data dir; it must refuse, and then comes back with
// its own flags.
func (n *nemesis) misconfigRestart(ctx context.Context, f *Fault) error {
	args := n.c.Args(f.Node)
	parts := 16
	if p, err := strconv.Atoi(flagValue(args, "--partitions")); err == nil {
		parts = p
	}
	// A node that joined (--join) learns the cluster's shape from its data
	// dir and ignores --partitions; give it another node's id instead.
	wrong, what := setFlag(args, "--partitions", strconv.Itoa(parts*2)), fmt.Sprintf("--partitions %d", parts*2)
	if flagValue(args, "--initial-cluster") == "" {
		id := strconv.FormatUint(f.Node+1000, 10)
		wrong, what = setFlag(args, "--id", id), "--id "+id
	}
	if err := n.c.Kill(f.Node); err != nil {
		return err
	}
	f.StartMS = n.rec.nowMS()
	pctx, cancel := context.WithTimeout(ctx, misconfigStartTimeout)
	defer cancel()
	out, err := exec.CommandContext(pctx, wrong[0], wrong[1:]...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case pctx.Err() != nil:
		f.Detail = fmt.Sprintf("node %d with %s over its data dir was NOT refused (still running after %v)", f.Node, what, misconfigStartTimeout)
	case errors.As(err, &exit):
		// Refused: the flags contradict the data dir (or, on a secure run,
		// the certificate names another node).
		f.Detail = fmt.Sprintf("node %d with %s over its data dir: refused to start (%.120s)", f.Node, what, lastLine(out))
	default:
		f.Detail = fmt.Sprintf("node %d with %s over its data dir: NOT refused as expected (%v): %.200s", f.Node, what, err, out)
	}
	n.log("misconfig: %s", f.Detail)
	f.EndMS = n.rec.nowMS()
	return n.restart(ctx, f.Node)
}

// logSizes records how long each node's log is now.
func (n *nemesis) logSizes() map[uint64]int64 {
	sizes := map[uint64]int64{}
	for _, nd := range n.c.Nodes() {
		if st, err := os.Stat(nd.LogPath); err == nil {
			sizes[nd.ID] = st.Size()
		} else {
			sizes[nd.ID] = 0
		}
	}
	return sizes
}

// logsSince lists the nodes whose log gained a line containing what since
// sizes were taken.
func (n *nemesis) logsSince(sizes map[uint64]int64, what string) []uint64 {
	var out []uint64
	for _, nd := range n.c.Nodes() {
		b, err := os.ReadFile(nd.LogPath)
		if err != nil || int64(len(b)) < sizes[nd.ID] {
			continue
		}
		if strings.Contains(string(b[sizes[nd.ID]:]), what) {
			out = append(out, nd.ID)
		}
	}
	return out
}

// flagValue returns the value of --name in args ("" if absent).
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// setFlag returns args with --name set to value (appended if absent).
func setFlag(args []string, name, value string) []string {
	out := append([]string(nil), args...)
	for i, a := range out {
		if a == name && i+1 < len(out) {
			out[i+1] = value
			return out
		}
		if strings.HasPrefix(a, name+"=") {
			out[i] = name + "=" + value
			return out
		}
	}
	return append(out, name, value)
}

// freePorts finds n free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// lastLine is the last non-empty line of a process's output, where its
// refusal is.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}
