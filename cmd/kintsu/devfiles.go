package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kintsu/kintsu/internal/launcher"
)

// What `kintsu dev` leaves for the tools after it:
//   - DIR/dev.toml, its own flags (but --dir), read back when it starts
//     again on DIR, so `kintsu dev --dir DIR` brings back the same
//     cluster whatever flags made it;
//   - DIR/ctl.toml, ctl's flags to reach it (the admin address, and for a
//     --secure cluster the CA and password), copied while it runs to the
//     user's state directory, where `kintsu ctl` looks when it is given no
//     address; removed from there when the cluster stops, so ctl never
//     talks to whatever listens on that address later.

const (
	devFlagsFile = "dev.toml"
	ctlFile      = "ctl.toml"
)

// ctlPointer is where a running dev cluster leaves ctl.toml for ctl: the
// user's state directory ($XDG_STATE_HOME/kintsu, ~/.local/state/kintsu);
// "" when there is none.
func ctlPointer() string {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "kintsu", "dev-"+ctlFile)
}

// devDirPointer names the file holding the running dev cluster's
// directory, beside ctlPointer.
func devDirPointer() string {
	p := ctlPointer()
	if p == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(p), "dev-dir")
}

// writeDevFlags records f in dir.
func writeDevFlags(dir string, f devFlags) error {
	text := fmt.Sprintf("# kintsu dev's flags for this directory (read back by `kintsu dev --dir %s`)\nnodes = %d\nbase-port = %d\npartitions = %d\nreplicas = %d\nsecure = %t\n",
		dir, f.nodes, f.basePort, f.partitions, f.replicas, f.secure)
	return os.WriteFile(filepath.Join(dir, devFlagsFile), []byte(text), 0o644)
}

// publishCtl writes ctl's flags for the cluster in dir, and points ctl at
// them. It returns what to call when the cluster stops.
func publishCtl(dir string, c *launcher.Cluster, sec devSecurity) (unpublish func(), err error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# kintsu ctl's flags for the kintsu dev cluster in %s\nhttp = %s\n", dir, strconv.Quote(c.Nodes()[0].HTTPAddr))
	if sec.certsDir != "" {
		fmt.Fprintf(&b, "certs-dir = %s\npassword-file = %s\n", strconv.Quote(sec.certsDir), strconv.Quote(sec.passwordFile))
	}
	if err := os.WriteFile(filepath.Join(dir, ctlFile), b.Bytes(), 0o644); err != nil {
		return func() {}, err
	}
	p := ctlPointer()
	if p == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return func() {}, err
	}
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		return func() {}, err
	}
	dp := devDirPointer()
	if err := os.WriteFile(dp, []byte(dir+"\n"), 0o644); err != nil {
		return func() {}, err
	}
	return func() {
		// Only if they are still this cluster's: another dev cluster may
		// have started since.
		if cur, err := os.ReadFile(p); err == nil && bytes.Equal(cur, b.Bytes()) {
			os.Remove(p)
		}
		if cur, err := os.ReadFile(dp); err == nil && string(cur) == dir+"\n" {
			os.Remove(dp)
		}
	}, nil
}
