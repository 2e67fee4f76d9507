// Package testbin builds the kintsu binary once for test packages that
// run real server processes (end-to-end and chaos tests).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Main builds kintsu into a temporary directory, runs the tests with its
// path, removes it and exits: call it from TestMain.
func Main(run func(binary string) int) {
	dir, err := os.MkdirTemp("", "kintsu-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary := filepath.Join(dir, "kintsu")
	build := exec.Command("go", "build", "-o", binary, "github.com/kintsu/kintsu/cmd/kintsu")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building kintsu:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := run(binary)
	os.RemoveAll(dir)
	os.Exit(code)
}
