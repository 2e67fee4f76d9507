package kv

import (
	"fmt"
	"strings"
)

// Redis's own reply texts, so clients behave as they do against Redis.
const (
	ErrSyntax       = "ERR syntax error"
	ErrNotInteger   = "ERR value is not an integer or out of range"
	ErrOverflow     = "ERR increment or decrement would overflow"
	ErrWrongType    = "WRONGTYPE Operation against a key holding the wrong kind of value"
	ErrCrossSlot    = "CROSSSLOT Keys in request don't hash to the same slot"
	ErrTooLarge     = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
	ErrNoExpiry     = "ERR key expiry (EX, PX, EXAT, PXAT, KEEPTTL) is not supported by Kintsu yet"
	ErrStaleRequest = "ERR internal: request already completed"
)

// UnknownCommand is Redis's reply to a command it does not know.
func UnknownCommand(args [][]byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ERR unknown command '%s', with args beginning with: ", clip(args[0], 128))
	for _, a := range args[1:] {
		if b.Len() > 1024 {
			break
		}
		fmt.Fprintf(&b, "'%s' ", clip(a, 128))
	}
	return b.String()
}

// WrongArity is Redis's reply to a command with the wrong number of arguments.
func WrongArity(name string) string {
	return fmt.Sprintf("ERR wrong number of arguments for '%s' command", name)
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
