package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/pki"
)

func TestCertCommandsWriteACertsDir(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"create-ca", "--certs-dir", dir},
		{"create-node", "2", "127.0.0.1", "db2.example", "--certs-dir", dir},
		{"create-client", "--certs-dir", dir, "alice"},
	} {
		if code := runCert(args); code != 0 {
			t.Fatalf("kintsu cert %v: exit %d", args, code)
		}
	}
	if _, err := pki.LoadNode(dir, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.ClientConfig(dir, "alice"); err != nil {
		t.Fatal(err)
	}
	// Nothing is replaced without --overwrite; with it, it is.
	before, _ := os.ReadFile(filepath.Join(dir, pki.CAKey))
	if code := runCert([]string{"create-ca", "--certs-dir", dir}); code != 1 {
		t.Fatalf("create-ca over an existing CA: exit %d, want 1", code)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, pki.CAKey)); string(after) != string(before) {
		t.Fatal("the CA key was replaced")
	}
	for _, bad := range [][]string{
		{"create-node", "0", "h", "--certs-dir", dir},
		{"create-node", "3", "--certs-dir", dir},
		{"create-ca"},
		{"frobnicate", "--certs-dir", dir},
	} {
		if code := runCert(bad); code != 2 {
			t.Errorf("kintsu cert %v: exit %d, want a usage error", bad, code)
		}
	}
}

func TestServerNeedsCertsOrInsecure(t *testing.T) {
	if msg := securityProblem("", false); !strings.Contains(msg, "kintsu cert create-ca") || !strings.Contains(msg, "--insecure") {
		t.Errorf("without certs: %q, want what to do", msg)
	}
	if securityProblem("", true) != "" || securityProblem("certs", false) != "" {
		t.Error("a valid choice was refused")
	}
	if securityProblem("certs", true) == "" {
		t.Error("--certs-dir with --insecure was accepted")
	}
	if code := runServer([]string{"--id", "1", "--data-dir", t.TempDir(), "--initial-cluster", "1=127.0.0.1:17001"}); code != 2 {
		t.Errorf("kintsu server without --certs-dir or --insecure: exit %d, want 2", code)
	}
}
