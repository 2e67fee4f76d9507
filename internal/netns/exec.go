package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"
)

// cmdTimeout bounds every external command. ip and nft answer in
// milliseconds; the margin covers a loaded machine.
const cmdTimeout = 15 * time.Second

// tool resolves an executable once per call site, with an install hint.
func tool(name, pkg string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("netns: %s not found (install %s): %w", name, pkg, err)
	}
	return p, nil
}

func ipTool() (string, error)  { return tool("ip", "iproute2") }
func nftTool() (string, error) { return tool("nft", "nftables") }

// run executes argv with cmdTimeout, feeding it stdin if not nil. The error
// names the command and quotes its output, with a hint for missing
// privileges.
func run(stdin io.Reader, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Should the command leave a child holding the output pipe, Wait
	// returns this long after the kill instead of never.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	if err == nil {
		return text, nil
	}
	what := strings.Join(append([]string{baseName(argv[0])}, argv[1:]...), " ")
	if ctx.Err() != nil {
		return text, fmt.Errorf("%s: timed out after %v", what, cmdTimeout)
	}
	if text == "" {
		text = err.Error()
	}
	return text, fmt.Errorf("%s: %s%s", what, text, privilegeHint(text))
}

func privilegeHint(out string) string {
	o := strings.ToLower(out)
	if strings.Contains(o, "operation not permitted") || strings.Contains(o, "permission denied") {
		return " (need root / CAP_NET_ADMIN and CAP_SYS_ADMIN)"
	}
	return ""
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

var probeSeq atomic.Uint64

// Supported reports whether this process can build a Net: it needs ip and
// nft, the right to create network namespaces, bridges and veth pairs, and
// nftables bridge-family support. It checks by doing it in a throwaway
// namespace, which it removes again; nil means supported.
func Supported() error {
	ip, err := ipTool()
	if err != nil {
		return err
	}
	nft, err := nftTool()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return fmt.Errorf("netns: lock directory: %w", err)
	}
	ns := fmt.Sprintf("kintsu-probe-%d-%d", os.Getpid(), probeSeq.Add(1))
	if _, err := run(nil, ip, "netns", "add", ns); err != nil {
		return fmt.Errorf("netns: cannot create network namespaces: %w", err)
	}
	var errs []error
	steps := []struct {
		what  string
		stdin string
		argv  []string
	}{
		{"cannot create a bridge", "", []string{ip, "-n", ns, "link", "add", "probe-br", "type", "bridge"}},
		{"cannot create a veth pair", "", []string{ip, "-n", ns, "link", "add", "probe-a", "type", "veth", "peer", "name", "probe-b"}},
		{"nftables bridge family unavailable", "table bridge probe {\n\tchain c { type filter hook forward priority -200; policy accept; }\n}\n",
			[]string{ip, "netns", "exec", ns, nft, "-f", "-"}},
	}
	for _, s := range steps {
		var in io.Reader
		if s.stdin != "" {
			in = strings.NewReader(s.stdin)
		}
		if _, err := run(in, s.argv...); err != nil {
			errs = append(errs, fmt.Errorf("netns: %s: %w", s.what, err))
			break
		}
	}
	if _, err := run(nil, ip, "netns", "del", ns); err != nil {
		errs = append(errs, fmt.Errorf("netns: removing probe namespace: %w", err))
	}
	return errors.Join(errs...)
}
