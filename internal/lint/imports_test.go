package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// An import rule: the packages pkg names, and everything they link, must
// not include any of forbid. Paths starting with internal/ or cmd/ are
// Kintsu's own; "x/..." stands for x and every package below it.
type importRule struct {
	pkg    string
	forbid []string
	why    string
}

// nonStd in forbid stands for every package outside the standard library.
const nonStd = "<not the standard library>"

const (
	pebble = "github.com/cockroachdb/pebble/..."
	grpc   = "google.golang.org/grpc/..."
)

// nodeOnly is what only a running node needs: replication, storage and
// the links between nodes.
var nodeOnly = []string{"internal/server", "internal/raftstore", "internal/transport", "internal/storage", pebble, grpc}

// noNetwork keeps a package pure: deterministic, testable in memory, and
// light enough for any process to link.
var noNetwork = []string{"net", "net/http", grpc, "internal/server", "internal/raftstore"}

const (
	whyTool = "a tool is a client of the admin API: it speaks HTTP and JSON (internal/api) and builds and runs without the node's code"
	whyPure = "a pure package runs inside raft's apply or in any process: no network, no node"
)

// importRules are checked on what each package links into a binary (its
// tests may import more). A rule is one line; one whose package does not
// exist yet (codec today) is skipped with a note in the test log, so a
// rule may come before its package.
var importRules = []importRule{
	{"internal/ctl", nodeOnly, whyTool},
	{"internal/chaos", nodeOnly, whyTool},
	{"internal/kv", noNetwork, whyPure},
	{"internal/txn", noNetwork, whyPure},
	{"internal/ring", noNetwork, whyPure},
	{"internal/resp", noNetwork, whyPure},
	{"internal/clock", noNetwork, whyPure},
	{"internal/api", noNetwork, whyPure},
	{"internal/codec", noNetwork, whyPure},
	{"internal/backup", noNetwork, whyPure},
	{"internal/command", noNetwork, whyPure},
	{"internal/statemachine", []string{"net", "net/http", grpc, pebble, "internal/server", "internal/raftstore", "internal/storage", "internal/transport"},
		"the state machine is applied from the log on every replica: pure, and tested on an in-memory store"},
	{"internal/edge", []string{"internal/server", "internal/raftstore", "internal/transport", "internal/storage", pebble, grpc},
		"the RESP edge decodes, gates and answers; replication, storage and peers sit behind its Router and Transactions interfaces"},
	{"internal/route", []string{"internal/server", "internal/edge"}, "routing serves the edge and the control plane; it knows neither"},
	{"internal/control", []string{"internal/server", "internal/edge", "internal/admin"},
		"the control plane is handed the node's parts through each loop's Config, never the node; the edge and the admin API call it, not the other way round"},
	{"internal/raftstore", []string{"internal/server"}, "the replication engine serves the node and must not know it"},
	{"internal/admin", []string{"internal/server", "internal/edge"}, "admin is handed the node's parts through its Config, never the node; serving HTTP needs nothing of the RESP edge"},
	{"internal/...", []string{"cmd/..."}, "commands assemble packages; code a package needs belongs under internal/"},
	{"internal/failure", []string{nonStd}, "the request path's typed errors are a leaf every layer can name"},
	{"internal/command", []string{nonStd}, "command says what a command is; every layer links it, so it stays a leaf of the standard library"},
	{"internal/api", []string{nonStd}, "api is the compatibility contract every tool links: it stays a leaf of the standard library"},
	{"internal/pki", nodeOnly, "certificates are made by tools and read by every port that speaks TLS: pki links no node code"},
}

type goPackage struct {
	ImportPath string
	Standard   bool
	Imports    []string
}

// listPackages runs go list over the module: its packages and everything
// they link, by import path.
func listPackages(t *testing.T) (module string, pkgs map[string]*goPackage) {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	out, err := exec.Command(goCmd, "list", "-m").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	module = strings.TrimSpace(string(out))
	cmd := exec.Command(goCmd, "list", "-deps", "-json=ImportPath,Standard,Imports", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.Bytes())
	}
	pkgs = map[string]*goPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(goPackage)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	return module, pkgs
}

func TestImportRules(t *testing.T) {
	module, pkgs := listPackages(t)
	full := func(p string) string {
		for _, own := range []string{"internal", "cmd"} {
			if p == own || strings.HasPrefix(p, own+"/") {
				return module + "/" + p
			}
		}
		return p
	}
	short := func(p string) string { return strings.TrimPrefix(p, module+"/") }
	matches := func(pattern, path string) bool {
		if pattern == nonStd {
			return pkgs[path] == nil || !pkgs[path].Standard
		}
		if base, ok := strings.CutSuffix(pattern, "/..."); ok {
			base = full(base)
			return path == base || strings.HasPrefix(path, base+"/")
		}
		return path == full(pattern)
	}
	var own []string
	for p := range pkgs {
		if strings.HasPrefix(p, module+"/") {
			own = append(own, p)
		}
	}
	slices.Sort(own)

	for _, r := range importRules {
		subjects := slices.DeleteFunc(slices.Clone(own), func(p string) bool { return !matches(r.pkg, p) })
		if len(subjects) == 0 {
			t.Logf("rule for %s skipped: no such package yet", r.pkg)
			continue
		}
		for _, p := range subjects {
			order, prev := reach(pkgs, p)
			for _, f := range r.forbid {
				var found []string
				for _, q := range order[1:] {
					if matches(f, q) {
						found = append(found, q)
					}
				}
				if len(found) == 0 {
					continue
				}
				// The nearest offender names the import to cut; the rest
				// usually come with it.
				var chain []string
				for q := found[0]; q != ""; q = prev[q] {
					chain = append(chain, short(q))
				}
				slices.Reverse(chain)
				more := ""
				if len(found) > 1 {
					more = fmt.Sprintf(" (and %d more that match)", len(found)-1)
				}
				t.Errorf("%s must not import %s: %s.\n\tit imports %s%s through %s",
					short(p), f, r.why, short(found[0]), more, strings.Join(chain, " -> "))
			}
		}
	}
}

// reach lists the packages from links, nearest first (from itself comes
// first), and for each the package that imports it on a shortest chain.
func reach(pkgs map[string]*goPackage, from string) (order []string, prev map[string]string) {
	prev = map[string]string{from: ""}
	order = []string{from}
	for i := 0; i < len(order); i++ {
		p := pkgs[order[i]]
		if p == nil {
			continue
		}
		for _, q := range p.Imports {
			if _, seen := prev[q]; !seen {
				prev[q] = order[i]
				order = append(order, q)
			}
		}
	}
	return order, prev
}
