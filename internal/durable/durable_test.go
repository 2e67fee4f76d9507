package durable

import (
	"io"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kintsu/kintsu/internal/dst/simfs"
)

func read(t *testing.T, fs vfs.FS, name string) string {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReplaceFileSurvivesPowerLoss: after ReplaceFile a power loss keeps
// the new content; a replacement that never finished leaves the old one.
func TestReplaceFileSurvivesPowerLoss(t *testing.T) {
	fs := simfs.New(0)
	if err := fs.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(fs, ""); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceFile(fs, "d", "MARK", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, fs.Crash(simfs.CrashOptions{}), "d/MARK"); got != "one" {
		t.Fatalf("after a power loss: %q, want the replaced content", got)
	}
	// A replacement cut short before its rename: the temporary file may
	// be there, the old content stays.
	f, err := fs.Create("d/MARK"+TmpSuffix, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("two")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, fs.Crash(simfs.CrashOptions{}), "d/MARK"); got != "one" {
		t.Fatalf("a replacement cut short: %q, want the old content", got)
	}
}
