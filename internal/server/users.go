package server

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// The password file (--requirepass-file) and the cluster's users.
//
// Users live in the metadata group, so every node agrees on them. A node
// given a password file makes the default user require exactly that
// password: at start it compares the default user's stored hashes with
// the file's, and when they differ writes "resetpass #HASH" for the
// default user (logged at WARN: it changes the password for the whole
// cluster, as a restarted Redis with a new requirepass would). Until that
// write is applied, and whenever the stored default user has no password
// at all, the node's edge requires the file's password anyway
// (edge.Config.DefaultPasswordHash), so a node with a password file never
// serves a client that has not given it. Every node should be given the
// same file; one given another password takes the cluster over to it.

// maxPasswordFile bounds the file read: a password, not a document.
const maxPasswordFile = 4 << 10

// readPasswordFile reads the password from path: the file's contents up
// to the first line break, which must not be empty.
func readPasswordFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--requirepass-file: %w", err)
	}
	defer f.Close()
	b := make([]byte, maxPasswordFile+1)
	n, _ := f.Read(b)
	if n > maxPasswordFile {
		return nil, fmt.Errorf("--requirepass-file %s: longer than %d bytes", path, maxPasswordFile)
	}
	pw, _, _ := bytes.Cut(b[:n], []byte("\n"))
	pw = bytes.TrimSuffix(pw, []byte("\r"))
	if len(pw) == 0 {
		return nil, fmt.Errorf("--requirepass-file %s: the first line is empty", path)
	}
	return pw, nil
}

// passwordHash is the file's password hash, "" without a file.
func (n *Node) passwordHash() (string, error) {
	if n.cfg.RequirePassFile == "" {
		return "", nil
	}
	pw, err := readPasswordFile(n.cfg.RequirePassFile)
	if err != nil {
		return "", err
	}
	return acl.Hash(pw), nil
}

// applyPasswordFile writes the file's password into the cluster's users
// until they hold it, retrying each second until the node stops.
func (n *Node) applyPasswordFile(hash string) func(ctx context.Context) {
	return func(ctx context.Context) {
		for {
			done, err := n.setDefaultPassword(ctx, hash)
			if done {
				return
			}
			if err != nil {
				n.log.Debug("password file: the cluster's users are not writable yet", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

func (n *Node) setDefaultPassword(ctx context.Context, hash string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	t, err := n.front.ReadUsers(ctx)
	if err != nil {
		return false, err
	}
	if d, ok := t.User(acl.DefaultName); ok && !d.NoPass && len(d.Passwords) == 1 && d.Passwords[0] == hash {
		return true, nil
	}
	reply := n.write(ctx, statemachine.MetaGroup, [][]byte{[]byte(statemachine.CmdACLSetUser), []byte(acl.DefaultName), []byte("resetpass"), []byte("#" + hash)})
	if string(reply) != "+OK\r\n" {
		return false, fmt.Errorf("%q", reply)
	}
	n.log.Warn("the default user's password is now the one in --requirepass-file, for the whole cluster")
	_, err = n.front.ReadUsers(ctx)
	return err == nil, err
}
