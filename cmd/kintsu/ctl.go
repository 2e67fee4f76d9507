package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/backup"
	"github.com/kintsu/kintsu/internal/config"
	"github.com/kintsu/kintsu/internal/ctl"
)

const ctlUsage = `Usage (flags go before the command):
  kintsu ctl [--http HOST:PORT] status                      nodes and partitions, as one node sees them
  kintsu ctl [--http HOST:PORT] locate KEY                  the key's slot, partition, replicas and leader
  kintsu ctl [--http HOST:PORT] node decommission ID        move node ID's replicas away, then retire it (shows progress)
  kintsu ctl [--http HOST:PORT] node remove ID [--force]    remove a dead node for good
  kintsu ctl [--http HOST:PORT] partition split ID [SLOT]   split partition ID at SLOT (default: its middle) into a new one
  kintsu ctl [--http HOST:PORT] partition merge ID          merge partition ID with its neighbour (waits while their replicas are co-located)
  kintsu ctl [--http HOST:PORT] backup --out DIR            online, consistent backup of the whole cluster
  kintsu ctl backup verify DIR                              check a backup's every file without restoring it
  kintsu ctl [--http HOST:PORT] restore --from DIR          load a backup into a new, empty cluster
`

// runCtl is kintsu ctl: 0 done, 1 the node could not answer, 2 usage.
func runCtl(args []string) int {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, ctlUsage); fs.PrintDefaults() }
	certsDir := fs.String("certs-dir", "", "for a secure cluster: HTTPS, trusting DIR/ca.crt")
	certUser := fs.String("cert-user", "", "with --certs-dir: present DIR/client.USER.crt")
	addr := fs.String("http", "", "admin (HTTP) address of any node, a node's --http-addr (also $KINTSU_HTTP; default: the kintsu dev cluster running now)")
	user := fs.String("user", "default", "ACL user allowed @admin, for a cluster with a password")
	pwFile := fs.String("password-file", "", "file whose first line is the user's password (else $"+ctl.PasswordEnv+")")
	fs.String("config", "", "a file of these flags (also $KINTSU_CTL_CONFIG; default: the one a running kintsu dev leaves)")
	loaded, err := config.LoadWith(fs, args, os.Environ(), config.Options{FileEnv: "KINTSU_CTL_CONFIG", DefaultFile: ctlPointer()})
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(os.Stderr, "kintsu ctl: %v\n", err)
		return 2
	}
	for _, a := range fs.Args() {
		if f := fs.Lookup(strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-")); strings.HasPrefix(a, "-") && f != nil {
			fmt.Fprintf(os.Stderr, "kintsu ctl: %s is a flag of ctl: put it before the command (kintsu ctl %s ... %s)\n", a, a, fs.Arg(0))
			return 2
		}
	}
	needsCluster := !(fs.NArg() == 3 && fs.Arg(0) == "backup" && fs.Arg(1) == "verify")
	switch {
	case *addr == "" && needsCluster && fs.NArg() > 0:
		fmt.Fprintln(os.Stderr, "kintsu ctl: which cluster? Give --http HOST:PORT (a node's --http-addr) or set KINTSU_HTTP; a running `kintsu dev` is found by itself.")
		return 2
	case loaded.Sources["http"] == config.FromFile && needsCluster:
		fmt.Fprintf(os.Stderr, "kintsu ctl: cluster at %s (from %s)\n", *addr, loaded.File)
	}
	creds, err := ctl.LoadCredentials(*user, *pwFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu ctl: %v\n", err)
		return 2
	}
	creds.Use()
	rest := fs.Args()
	if err := ctl.UseTLS(*certsDir, *certUser); err != nil {
		fmt.Fprintf(os.Stderr, "kintsu ctl: --certs-dir: %v\n", err)
		return 2
	}
	if len(rest) > 0 && rest[0] == "node" {
		return runCtlNode(*addr, rest[1:])
	}
	if len(rest) > 0 && rest[0] == "partition" {
		return runCtlPartition(*addr, rest[1:])
	}
	if len(rest) > 0 && (rest[0] == "backup" || rest[0] == "restore") {
		return runCtlBackup(*addr, rest)
	}
	if len(rest) == 0 || rest[0] == "locate" && len(rest) != 2 || rest[0] == "status" && len(rest) != 1 {
		fs.Usage()
		return 2
	}
	if rest[0] != "status" && rest[0] != "locate" {
		fmt.Fprintf(os.Stderr, "kintsu ctl: unknown command %q\n\n", rest[0])
		fs.Usage()
		return 2
	}
	st, err := ctl.Fetch(context.Background(), *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu ctl: %v\n", err)
		return 1
	}
	if rest[0] == "status" {
		err = ctl.PrintStatus(os.Stdout, st, ctl.ProbeAll(context.Background(), st))
	} else {
		var loc ctl.Location
		if loc, err = ctl.Locate(st, rest[1]); err == nil {
			err = ctl.PrintLocation(os.Stdout, loc, st)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu ctl: %v\n", err)
		return 1
	}
	return 0
}

// runCtlNode is kintsu ctl node decommission|remove ID.
func runCtlNode(addr string, args []string) int {
	force := len(args) == 3 && args[2] == "--force"
	if len(args) != 2 && !force || args[0] != "decommission" && args[0] != "remove" || force && args[0] != "remove" {
		fmt.Fprint(os.Stderr, ctlUsage)
		return 2
	}
	id, err := strconv.ParseUint(args[1], 10, 64)
	if err != nil || id == 0 {
		fmt.Fprintf(os.Stderr, "kintsu ctl: node id %q: want a positive integer\n", args[1])
		return 2
	}
	if args[0] == "remove" {
		err = ctl.NodeAction(context.Background(), addr, id, "remove", force)
		if err == nil {
			fmt.Printf("node %d removed; its replicas are rebuilt on the other nodes\n", id)
		}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		err = ctl.Decommission(ctx, addr, id, os.Stdout, 500*time.Millisecond)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu ctl: %v\n", err)
		return 1
	}
	return 0
}

// runCtlPartition is kintsu ctl partition split ID [SLOT] | merge ID.
func runCtlPartition(addr string, args []string) int {
	if len(args) < 2 || len(args) > 3 || args[0] != "split" && args[0] != "merge" || args[0] == "merge" && len(args) != 2 {
		fmt.Fprint(os.Stderr, ctlUsage)
		return 2
	}
	id, err := strconv.Atoi(args[1])
	if err != nil || id < 0 {
		fmt.Fprintf(os.Stderr, "kintsu ctl: partition id %q: want a non-negative integer\n", args[1])
		return 2
	}
	if args[0] == "merge" {
		return ctlMerge(addr, id)
	}
	var slot uint64
	if len(args) == 3 {
		if slot, err = strconv.ParseUint(args[2], 10, 16); err != nil || slot == 0 || slot >= 16384 {
			fmt.Fprintf(os.Stderr, "kintsu ctl: slot %q: want 1 to 16383\n", args[2])
			return 2
		}
	}
	res, err := ctl.SplitPartition(context.Background(), addr, id, uint16(slot))
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu ctl: %v\n", err)
		return 1
	}
	fmt.Printf("partition %d split: partition %d now serves its upper slots (see kintsu ctl status)\n", res.Left, res.Right)
	return 0
}

// ctlMerge merges partition id with its neighbour and waits (at most
// five minutes) while the placement driver co-locates their replicas.
func ctlMerge(addr string, id int) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	said := false
	for {
		res, err := ctl.MergePartition(ctx, addr, id)
		switch {
		case err != nil:
			fmt.Fprintf(os.Stderr, "kintsu ctl: %v\n", err)
			return 1
		case !res.Pending:
			fmt.Printf("partitions merged: partition %d now serves the slots of partition %d (see kintsu ctl status)\n", res.Survivor, res.Absorbed)
			return 0
		case !said:
			fmt.Printf("merge of partitions %d and %d reserved: moving their replicas onto the same nodes...\n", res.Survivor, res.Absorbed)
			said = true
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(os.Stderr, "kintsu ctl: the merge is still waiting for its replicas to be co-located; the placement driver finishes it (kintsu ctl status shows it)")
			return 1
		case <-time.After(time.Second):
		}
	}
}

// runCtlBackup is kintsu ctl backup --out DIR | backup verify DIR |
// restore --from DIR.
func runCtlBackup(addr string, args []string) int {
	var err error
	var m *backup.Manifest
	switch {
	case len(args) == 3 && args[0] == "backup" && args[1] == "verify":
		if m, err = ctl.Verify(args[2], os.Stdout); err == nil {
			fmt.Printf("backup %s of cluster %s is whole: %d partitions, %d keys, %d bytes, cut at %s\n", m.BackupID, m.ClusterID, len(m.Partitions), m.Keys, m.Bytes, m.CutAt)
		}
	case len(args) == 3 && args[0] == "backup" && args[1] == "--out":
		ctx, cancel := context.WithTimeout(context.Background(), 24*time.Hour)
		defer cancel()
		if m, err = ctl.Backup(ctx, addr, args[2], os.Stdout); err == nil {
			fmt.Printf("backup %s written to %s: %d partitions, %d keys, %d bytes\n", m.BackupID, args[2], len(m.Partitions), m.Keys, m.Bytes)
		}
	case len(args) == 3 && args[0] == "restore" && args[1] == "--from":
		ctx, cancel := context.WithTimeout(context.Background(), 24*time.Hour)
		defer cancel()
		if m, err = ctl.Restore(ctx, addr, args[2], os.Stdout); err == nil {
			fmt.Printf("restored backup %s (cut at %s): %d keys from its %d partitions\n", m.BackupID, m.CutAt, m.Keys, len(m.Partitions))
		}
	default:
		fmt.Fprint(os.Stderr, ctlUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu ctl: %v\n", err)
		return 1
	}
	return 0
}
