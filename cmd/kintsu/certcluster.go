package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kintsu/kintsu/internal/launcher"
	"github.com/kintsu/kintsu/internal/pki"
)

// runCertCluster is `kintsu cert create-cluster`: a whole cluster's
// certificates (and password) in one idempotent step, for an init
// container that has no shell to run several commands.
func runCertCluster(args []string) int {
	f := flag.NewFlagSet("cert create-cluster", flag.ContinueOnError)
	f.Usage = func() { io.WriteString(f.Output(), certUsage) }
	dir := f.String("certs-dir", "", "directory the files are written to (created if missing)")
	nodes := f.Int("nodes", 0, "number of nodes (ids 1..N)")
	pattern := f.String("host-pattern", "", "a host name for node i besides 127.0.0.1 and localhost, with %d for i (e.g. kintsu-%d)")
	client := f.String("client", "default", "user of the client certificate")
	pwFile := f.String("password-file", "", "write a random password here unless the file exists")
	owner := f.Int("owner", -1, "as root: give the files to this uid, readable by the directory's group")
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case *dir == "" || *nodes < 1 || f.NArg() > 0:
		return certFail("create-cluster needs --certs-dir and --nodes N (N > 0), and no arguments")
	case *pattern != "" && strings.Count(*pattern, "%d") != 1:
		return certFail("--host-pattern needs exactly one %d")
	}
	var hosts []string
	for i := 1; *pattern != "" && i <= *nodes; i++ {
		hosts = append(hosts, fmt.Sprintf(*pattern, i))
	}
	if err := launcher.CreateCerts(*dir, *nodes, hosts, *client); err != nil {
		fmt.Fprintf(os.Stderr, "kintsu cert create-cluster: %v\n", err)
		return 1
	}
	if *pwFile != "" {
		if err := ensurePassword(*pwFile); err != nil {
			fmt.Fprintf(os.Stderr, "kintsu cert create-cluster: %v\n", err)
			return 1
		}
	}
	if *owner >= 0 {
		if err := giveTo(*dir, *pwFile, *owner); err != nil {
			fmt.Fprintf(os.Stderr, "kintsu cert create-cluster: --owner: %v\n", err)
			return 1
		}
	}
	fmt.Printf("kintsu cert create-cluster: %s holds the CA, %d nodes' certificates and the client certificate of %s\n", *dir, *nodes, *client)
	return 0
}

// ensurePassword writes a random password to path unless it exists.
func ensurePassword(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	return pki.WriteFiles(filepath.Dir(path), []pki.File{{Name: filepath.Base(path), Data: []byte(hex.EncodeToString(raw) + "\n"), Mode: 0o600}}, false)
}

// giveTo hands dir's files (and the password file) to uid, with dir's
// group: directories 0750, certificates 0644, keys and the password 0640.
func giveTo(dir, pwFile string, uid int) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("no file ownership on this system")
	}
	gid := int(sys.Gid)
	set := func(p string, d fs.FileMode) error {
		mode := fs.FileMode(0o644)
		switch {
		case d.IsDir():
			mode = 0o750
		case strings.HasSuffix(p, ".key") || p == pwFile:
			mode = 0o640
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
		return os.Chmod(p, mode)
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return set(p, d.Type())
	})
	if err == nil && pwFile != "" && !strings.HasPrefix(pwFile, dir+string(filepath.Separator)) {
		err = set(pwFile, 0)
	}
	return err
}
