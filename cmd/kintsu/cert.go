package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/kintsu/kintsu/internal/pki"
)

const certUsage = `Usage:
  kintsu cert create-ca --certs-dir DIR [--overwrite]
  kintsu cert create-node ID HOST... --certs-dir DIR [--ca-cert FILE] [--ca-key FILE] [--overwrite]
  kintsu cert create-client USER --certs-dir DIR [--ca-cert FILE] [--ca-key FILE] [--overwrite]
  kintsu cert create-cluster --certs-dir DIR --nodes N [--host-pattern kintsu-%d] [--client USER]
                             [--password-file FILE] [--owner UID]

Makes the certificates of a secure cluster (ECDSA P-256, PEM files):

  create-ca      the cluster's certificate authority: DIR/ca.crt and
                 DIR/ca.key (10 years). Keep ca.key off the nodes: it signs.
  create-node    node ID's certificate, DIR/node.crt and DIR/node.key
                 (5 years), for every HOST (IP address or DNS name) that
                 peers and clients use to reach the node. It names the node
                 (URI kintsu://node/ID): the node must be started with
                 --id ID, and no other certificate can speak for it.
  create-client  a client certificate for USER, DIR/client.USER.crt and
                 DIR/client.USER.key (5 years).
  create-cluster everything a cluster of N nodes needs, in one step (for a
                 container's init step; kept when it exists, so it may run
                 at every start): the CA, node i's certificate in
                 DIR/node-i for 127.0.0.1, localhost and the host
                 --host-pattern names, a client certificate for --client
                 (default: default), and with --password-file a random
                 password. --owner (as root) gives the files to UID, with
                 the directory's group, readable by that group and no one
                 else (keys, password), so a node running as UID reads them.

The CA signing a node or client certificate is DIR/ca.crt and DIR/ca.key
unless --ca-cert and --ca-key say otherwise; ca.crt is copied into DIR.
Keys are written with mode 0600; existing files are never replaced
without --overwrite.

A node then runs with: kintsu server --id ID --certs-dir DIR ...
`

// runCert runs `kintsu cert`.
func runCert(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		out := io.Writer(os.Stdout)
		if len(args) == 0 {
			out = os.Stderr
		}
		io.WriteString(out, certUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub := args[0]
	if sub == "create-cluster" {
		return runCertCluster(args[1:])
	}
	fs := flag.NewFlagSet("cert "+sub, flag.ContinueOnError)
	fs.Usage = func() { io.WriteString(fs.Output(), certUsage) }
	var (
		dir       string
		overwrite bool
		signer    pki.Signer
		written   []string
	)
	fs.StringVar(&dir, "certs-dir", "", "directory the files are written to (created if missing)")
	fs.BoolVar(&overwrite, "overwrite", false, "replace existing files")
	if sub != "create-ca" {
		fs.StringVar(&signer.CACert, "ca-cert", "", "the CA certificate (default DIR/ca.crt)")
		fs.StringVar(&signer.CAKey, "ca-key", "", "the CA key (default DIR/ca.key)")
	}
	// Flags may come before or after the positional arguments.
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if dir == "" {
		return certFail("--certs-dir is required")
	}
	switch sub {
	case "create-ca":
		if len(pos) != 0 {
			return certFail("create-ca takes no arguments")
		}
		err = pki.CreateCA(dir, overwrite)
		written = []string{pki.CACert, pki.CAKey}
	case "create-node":
		if len(pos) < 2 {
			return certFail("create-node needs a node id and at least one host")
		}
		id, perr := strconv.ParseUint(pos[0], 10, 64)
		if perr != nil || id == 0 {
			return certFail(fmt.Sprintf("node id %q: want a positive integer", pos[0]))
		}
		err = pki.CreateNode(dir, signer, id, pos[1:], overwrite)
		written = []string{pki.NodeCert, pki.NodeKey}
	case "create-client":
		if len(pos) != 1 {
			return certFail("create-client needs exactly one user name")
		}
		err = pki.CreateClient(dir, signer, pos[0], overwrite)
		written = []string{pki.ClientCert(pos[0]), pki.ClientKey(pos[0])}
	default:
		return certFail(fmt.Sprintf("unknown subcommand %q", sub))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu cert %s: %v\n", sub, err)
		return 1
	}
	fmt.Printf("kintsu cert %s: wrote %s in %s\n", sub, strings.Join(written, ", "), dir)
	return 0
}

func certFail(msg string) int {
	fmt.Fprintf(os.Stderr, "kintsu cert: %s\n\n%s", msg, certUsage)
	return 2
}

// parseInterspersed parses flags placed anywhere among the arguments and
// returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// securityProblem is why `kintsu server` refuses to start as configured,
// or "".
func securityProblem(certsDir string, insecure bool) string {
	switch {
	case certsDir != "" && insecure:
		return "--certs-dir and --insecure exclude each other"
	case certsDir == "" && !insecure:
		return "no --certs-dir: refusing to run without TLS. Make certificates with `kintsu cert create-ca` and `kintsu cert create-node` and pass --certs-dir DIR, or pass --insecure to run without TLS or peer authentication"
	}
	return ""
}
