package e2e

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDevRecordsItselfForCtl: `kintsu dev` records its flags in its
// directory and ctl's address in the user's state directory while it
// runs. ctl, given no address, finds that cluster and says so; once the
// cluster stops it refuses to guess; `kintsu dev restart N` restarts a
// node that stays the running dev's child; and `kintsu dev --dir DIR` alone
// brings back a cluster made with other flags.
func TestDevRecordsItselfForCtl(t *testing.T) {
	state, dir := t.TempDir(), filepath.Join(t.TempDir(), "dev")
	env := append(slicesWithout(os.Environ(), "KINTSU_HTTP=", "KINTSU_CTL_CONFIG="), "XDG_STATE_HOME="+state)
	base := 20000 + 10*rand.IntN(200)
	startDev := func(args ...string) (stop func()) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, binary, append([]string{"dev", "--dir", dir}, args...)...)
		cmd.Env = env
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var seen []string
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				break
			}
		}
		if len(seen) == 0 || !strings.HasPrefix(seen[len(seen)-1], "Press Ctrl-C") {
			cancel()
			t.Fatalf("kintsu dev did not come up:\n%s", strings.Join(seen, "\n"))
		}
		go func() {
			for sc.Scan() {
			}
		}()
		return func() {
			_ = cmd.Process.Signal(syscall.SIGINT)
			if err := cmd.Wait(); err != nil {
				t.Errorf("kintsu dev exited with %v", err)
			}
			cancel()
		}
	}
	ctl := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, binary, append([]string{"ctl"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	stop := startDev("--nodes", "1", "--replicas", "1", "--partitions", "8", "--base-port", strconv.Itoa(base))
	out, err := ctl("status")
	if err != nil || !strings.Contains(out, "8 partitions") || !strings.Contains(out, "(from "+filepath.Join(state, "kintsu")) {
		t.Fatalf("ctl status with no address, dev running: %v\n%s", err, out)
	}
	// A node restarted through it stays its child.
	restart := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, binary, append([]string{"dev"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := restart("restart", "1"); err != nil || !strings.Contains(out, "node 1 restarted and ready") {
		t.Fatalf("kintsu dev restart 1: %v\n%s", err, out)
	}
	if out, err := restart("restart", "7"); err == nil || !strings.Contains(out, "no node") {
		t.Fatalf("kintsu dev restart 7 of a 1-node cluster: %v\n%s", err, out)
	}
	stop()
	if out, err := restart("restart", "1"); err == nil || !strings.Contains(out, "no kintsu dev") {
		t.Fatalf("kintsu dev restart with none running: %v\n%s", err, out)
	}
	if out, err := ctl("status"); err == nil || !strings.Contains(out, "which cluster?") {
		t.Fatalf("ctl status with no address after dev stopped: %v\n%s", err, out)
	}
	recorded, err := os.ReadFile(filepath.Join(dir, "dev.toml"))
	if err != nil || !strings.Contains(string(recorded), "partitions = 8") {
		t.Fatalf("dev.toml: %v\n%s", err, recorded)
	}
	// Back with --dir alone: same ports, same partitions.
	stop = startDev()
	defer stop()
	out, err = ctl("status")
	if err != nil || !strings.Contains(out, "8 partitions") || !strings.Contains(out, "127.0.0.1:"+strconv.Itoa(base+1)) {
		t.Fatalf("ctl status after kintsu dev --dir alone: %v\n%s", err, out)
	}
}

func slicesWithout(env []string, prefixes ...string) []string {
	var out []string
	for _, kv := range env {
		keep := true
		for _, p := range prefixes {
			keep = keep && !strings.HasPrefix(kv, p)
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}
