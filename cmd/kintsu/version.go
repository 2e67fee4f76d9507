package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/kintsu/kintsu/internal/api"
)

// Set at link time by release builds (the Dockerfile):
// -ldflags "-X main.commit=... -X main.buildDate=...".
var (
	commit    string
	buildDate string
)

// versionText is what `kintsu version` and `--version` print: the
// version, the commit it was built from (with "+dirty" for uncommitted
// changes) and when, from the link flags or else the Go toolchain's VCS
// stamp.
func versionText() string {
	rev, when, dirty := commit, buildDate, false
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.time":
				if when == "" {
					when = s.Value + " (commit time)"
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	} else if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty && commit == "" {
		rev += "+dirty"
	}
	if when == "" {
		when = "unknown"
	}
	return fmt.Sprintf("kintsu %s\ncommit: %s\nbuilt: %s\ngo: %s %s/%s\n", api.Version, rev, when, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
