package launcher

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/pki"
)

// The real server does not exist yet, so the test binary doubles as a fake
// `kintsu server`: started with envFake=1 it parses the server's flags,
// binds its three addresses, serves /readyz and /healthz, and exits 0 on
// SIGTERM. Other variables steer its misbehaviour.
const (
	envFake       = "KINTSU_LAUNCHER_FAKE"    // "1": act as a node
	envCrashNode  = "KINTSU_FAKE_CRASH_NODE"  // id of a node that exits 3 at start
	envIgnoreTerm = "KINTSU_FAKE_IGNORE_TERM" // "1": ignore SIGTERM
	envReadyAfter = "KINTSU_FAKE_READY_AFTER" // delay before /readyz turns 200
	fakeCrashLine = "fake: crashing on purpose"
	envOrphanOK   = "KINTSU_FAKE_ORPHAN_OK"  // "1": keep running when orphaned
	envParent     = "KINTSU_LAUNCHER_PARENT" // a directory: act as a launcher (parent_linux_test.go)
)

func TestMain(m *testing.M) {
	if os.Getenv(envFake) == "1" {
		os.Exit(fakeNode(os.Args[1:]))
	}
	if dir := os.Getenv(envParent); dir != "" {
		os.Exit(fakeParent(dir))
	}
	os.Exit(m.Run())
}

func fakeNode(args []string) int {
	if len(args) == 0 || args[0] != "server" {
		fmt.Fprintf(os.Stderr, "fake: want the server subcommand, got %q\n", args)
		return 2
	}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	id := fs.Uint64("id", 0, "")
	dataDir := fs.String("data-dir", "", "")
	respAddr := fs.String("resp-addr", "", "")
	peerAddr := fs.String("peer-addr", "", "")
	httpAddr := fs.String("http-addr", "", "")
	fs.String("initial-cluster", "", "")
	insecure := fs.Bool("insecure", false, "")
	certsDir := fs.String("certs-dir", "", "")
	fs.Int("partitions", 0, "")
	fs.Int("replicas", 0, "")
	tag := fs.String("fake-tag", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *insecure == (*certsDir != "") {
		fmt.Fprintln(os.Stderr, "fake: want exactly one of --insecure and --certs-dir")
		return 2
	}
	if os.Getenv(envCrashNode) == strconv.FormatUint(*id, 10) {
		fmt.Fprintln(os.Stderr, fakeCrashLine)
		return 3
	}
	// Tests may be killed by their timeout; do not outlive the test binary.
	if os.Getenv(envOrphanOK) != "1" {
		go exitWhenOrphaned()
	}

	stop := make(chan os.Signal, 1)
	if os.Getenv(envIgnoreTerm) == "1" {
		signal.Ignore(syscall.SIGTERM)
		signal.Notify(stop, syscall.SIGINT)
	} else {
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	}

	boot := countBoot(*dataDir)
	for _, a := range []string{*respAddr, *peerAddr} {
		if _, err := net.Listen("tcp", a); err != nil { // held until exit
			fmt.Fprintln(os.Stderr, "fake:", err)
			return 1
		}
	}
	l, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake:", err)
		return 1
	}
	if *certsDir != "" {
		// As the real node: HTTPS with its own certificate.
		certs, err := pki.LoadNode(*certsDir, *id)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake:", err)
			return 1
		}
		l = tls.NewListener(l, certs.ClientServer())
	}
	var ready atomic.Bool
	delay, _ := time.ParseDuration(os.Getenv(envReadyAfter))
	time.AfterFunc(delay, func() { ready.Store(true) })

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "fake: not ready yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	// Log before serving: once /readyz answers, tests may kill us.
	fmt.Fprintf(os.Stderr, "fake: boot %d node %d tag=%s\n", boot, *id, *tag)
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)

	<-stop
	fmt.Fprintln(os.Stderr, "fake: SIGTERM, shutting down")
	srv.Close()
	return 0
}

// countBoot increments and returns the boot counter in dataDir, proving a
// restarted node got the same data directory.
func countBoot(dataDir string) int {
	path := filepath.Join(dataDir, "boots")
	b, _ := os.ReadFile(path)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	n++
	os.WriteFile(path, []byte(strconv.Itoa(n)), 0o644)
	return n
}

func exitWhenOrphaned() {
	parent := os.Getppid()
	for range time.Tick(200 * time.Millisecond) {
		if os.Getppid() != parent {
			os.Exit(1)
		}
	}
}
