package edge

import (
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/kintsu/kintsu/internal/command"
)

// Error replies by command and code, for the kintsu_command_errors_total
// metric: what on-call asks when clients see errors (refused commands,
// unknown ones, WRONGTYPE, MOVED...). The command is the spec's name, or,
// for a name Kintsu does not know, that name — only when an
// authenticated connection sent it and it looks like a command name
// (/metrics is open to anyone, and a password typed where a command goes
// must not show there); else "(unknown)". Every label is bounded so a
// client cannot grow the node's memory or the metrics' cardinality: the
// first maxUnknownNames unknown names are kept apart and the rest counted
// as "(other)", and at most maxErrorKeys pairs are kept.
const (
	maxErrorKeys    = 1024
	maxUnknownNames = 64
	maxNameLen      = 32
	otherName       = "(other)"
	unknownName     = "(unknown)"
)

// commandLike: what a command name Kintsu does not serve looks like
// (Redis's names: letters, digits, and . _ - |).
var commandLike = regexp.MustCompile(`^[a-z][a-z0-9._|-]{0,23}$`)

type errKey struct{ command, code string }

type errorCounts struct {
	mu      sync.Mutex
	byKey   map[errKey]int64 // guarded by mu
	unknown map[string]bool  // guarded by mu: unknown names kept apart
}

// labelSafe cuts s and replaces whatever is not printable ASCII.
func labelSafe(s string) string {
	if len(s) > maxNameLen {
		s = s[:maxNameLen]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// add counts one error reply with code to the command named by spec, or
// by name when spec is nil (a command that did not decode) and authed
// (an authenticated connection sent it).
func (e *errorCounts) add(spec *command.Spec, name []byte, authed bool, code string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byKey == nil {
		e.byKey = map[errKey]int64{}
		e.unknown = map[string]bool{}
	}
	var cmd string
	if spec != nil {
		cmd = spec.Name
	} else if cmd = strings.ToLower(string(name)); !authed || !commandLike.MatchString(cmd) {
		cmd = unknownName
	} else {
		if !e.unknown[cmd] {
			if len(e.unknown) >= maxUnknownNames {
				cmd = otherName
			} else {
				e.unknown[cmd] = true
			}
		}
	}
	k := errKey{cmd, labelSafe(code)}
	if _, ok := e.byKey[k]; !ok && len(e.byKey) >= maxErrorKeys {
		k = errKey{otherName, otherName}
	}
	e.byKey[k]++
}

func (e *errorCounts) reset() {
	e.mu.Lock()
	e.byKey, e.unknown = nil, nil
	e.mu.Unlock()
}

// ErrorCount is the error replies of one command with one code.
type ErrorCount struct {
	Command, Code string
	Count         int64
}

// ErrorCounts lists the node's error replies by command and code.
func (f *Server) ErrorCounts() []ErrorCount {
	e := &f.stats.errs
	e.mu.Lock()
	out := make([]ErrorCount, 0, len(e.byKey))
	for k, n := range e.byKey {
		out = append(out, ErrorCount{k.command, k.code, n})
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b ErrorCount) int {
		if c := strings.Compare(a.Command, b.Command); c != 0 {
			return c
		}
		return strings.Compare(a.Code, b.Code)
	})
	return out
}
