package lint

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The replication engine runs on a simulator's clock and scheduler
// (internal/dst) as well as on its own goroutine, so the code of its loop
// must not reach for what a simulator cannot drive: the machine's clock,
// goroutines of its own, the global random source, or a map's random
// iteration order where the order leaks out (sends, proposals, answers).
// Each exception below says why it is harmless; a new one needs a reason.
type exception struct {
	fn, what, why string
}

var engineExceptions = []exception{
	// Goroutines and real time outside the loop, started only by Start
	// (a simulator calls StartDriven and never meets them).
	{"Start", "go", "the loop, the stall watcher and the mark writer of a real node"},
	{"run", "time.NewTicker", "the real loop's tick; a simulator calls Tick"},
	{"watchStall", "time.NewTicker", "the stall watcher measures real time by design"},
	{"watchStall", "time.Since", "the stall watcher measures real time by design"},
	{"runMark", "time.NewTicker", "the mark writer runs on real time, only under Start"},
	{"TransferLeadership", "time.NewTicker", "a blocking admin call polling from its own goroutine"},
	{"awaitChange", "time.NewTicker", "blocking membership calls (ChangeReplicas, RemoveDamaged) polling from their own goroutine"},
	{"Condemned", "time.NewTicker", "the quarantine driver's wait, on its own goroutine"},
	{"mark", "time.Since", "loop progress for the stall watcher and health: real time by design"},
	{"", "time.Now", "progressEpoch, the stall watcher's origin"},
	// Metrics: latencies are real time and never feed back into behaviour.
	{"applyCommitted", "time.Now", "metrics only"},
	{"applyCommitted", "time.Since", "metrics only"},
	{"persist", "time.Now", "metrics only"},
	{"persist", "time.Since", "metrics only"},
}

var forbiddenTime = []string{"Now", "Since", "Until", "NewTicker", "NewTimer", "After", "AfterFunc", "Tick", "Sleep"}

func TestEngineIsDeterministic(t *testing.T) {
	const pkg = "github.com/kintsu/kintsu/internal/raftstore"
	exports := exportData(t, pkg)
	dir := pkgDir(t, pkg)
	fset := token.NewFileSet()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok || file == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	})
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{}}
	conf := types.Config{Importer: imp}
	if _, err := conf.Check(pkg, fset, files, info); err != nil {
		t.Fatalf("type-check %s: %v", pkg, err)
	}
	used := map[exception]bool{}
	allowed := func(fn, what string) bool {
		for _, ex := range engineExceptions {
			if ex.fn == fn && ex.what == what {
				used[ex] = true
				return true
			}
		}
		return false
	}
	var problems []string
	report := func(pos token.Pos, fn, format string, args ...any) {
		p := fset.Position(pos)
		problems = append(problems, fmt.Sprintf("%s:%d (in %s): %s", filepath.Base(p.Filename), p.Line, cmpOr(fn, "package scope"), fmt.Sprintf(format, args...)))
	}
	for _, f := range files {
		inspect := func(fn string, root ast.Node) {
			ast.Inspect(root, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.GoStmt:
					if !allowed(fn, "go") {
						report(n.Pos(), fn, "a goroutine of the engine's own: a simulator cannot schedule it")
					}
				case *ast.SelectorExpr:
					obj := info.Uses[n.Sel]
					if obj == nil || obj.Pkg() == nil {
						break
					}
					if _, isFunc := obj.(*types.Func); !isFunc {
						break
					}
					if sig, _ := obj.Type().(*types.Signature); sig == nil || sig.Recv() != nil {
						break
					}
					switch obj.Pkg().Path() {
					case "time":
						if slices.Contains(forbiddenTime, obj.Name()) && !allowed(fn, "time."+obj.Name()) {
							report(n.Pos(), fn, "time.%s: read the node's clock (e.now()) so a simulator can drive it", obj.Name())
						}
					case "math/rand", "math/rand/v2":
						if !strings.HasPrefix(obj.Name(), "New") {
							report(n.Pos(), fn, "rand.%s: the global source cannot be seeded; use e.rng", obj.Name())
						}
					}
				case *ast.RangeStmt:
					if tv, ok := info.Types[n.X]; ok {
						if _, isMap := tv.Type.Underlying().(*types.Map); isMap && !mapRangeOK(fn) {
							report(n.Pos(), fn, "range over a map: its order is random; walk sortedKeys(...) if the order can reach the outside, or list the function in mapRangeOK with the reason")
						}
					}
				}
				return true
			})
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok {
				inspect(fd.Name.Name, fd)
			} else {
				inspect("", d)
			}
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
	for _, ex := range engineExceptions {
		if !used[ex] {
			t.Errorf("exception {%s %s} matches nothing any more: remove it", ex.fn, ex.what)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// mapRangeOK lists the functions whose map walks cannot leak their order:
// they collect keys to sort, copy into another map, or release resources
// whose order nobody sees.
func mapRangeOK(fn string) bool {
	switch fn {
	case "sortedKeys", "sortedWaitKeys", "hostedList", "confirmers", "recordDedupe": // collect, then sort
	case "failGroupWaiters": // collects into a map answered in key order
	case "publishGroups", "noteHardStates": // copy into another map
	case "writeMark": // sorted before writing
	case "releaseCuts": // drops expired leases; only the log sees the order
	case "add": // the cut registry's eviction breaks ties by key
	case "releaseLocked", "expire", "closeAll", "drop": // registries closing Pebble snapshots: nobody sees the order
	default:
		return false
	}
	return true
}

// exportData returns the compiler's export data file of pkg and of every
// package it depends on (go list builds what is missing).
func exportData(t *testing.T, pkg string) map[string]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}}={{.Export}}", pkg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export: %v\n%s", err, stderr.String())
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func pkgDir(t *testing.T, pkg string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return strings.TrimSpace(string(out))
}
