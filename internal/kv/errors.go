package kv

import (
	"bytes"
	"fmt"

	"github.com/kintsu/kintsu/internal/command"
)

// Redis's own reply texts, so clients behave as they do against Redis.
const (
	ErrSyntax       = "ERR syntax error"
	ErrNotInteger   = "ERR value is not an integer or out of range"
	ErrOverflow     = "ERR increment or decrement would overflow"
	ErrDecrOverflow = "ERR decrement would overflow" // DECRBY of the smallest int64
	ErrWrongType    = "WRONGTYPE Operation against a key holding the wrong kind of value"
	ErrCrossSlot    = "CROSSSLOT Keys in request don't hash to the same slot"
	ErrTooLarge     = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
)

// UnknownCommand is Redis's reply to a command it does not know.
//
// Like Redis 7, the argument list gets a 128-byte budget and every string is
// cut at its first NUL byte (Redis prints C strings).
func UnknownCommand(args [][]byte) string {
	var list []byte
	for _, a := range args[1:] {
		if len(list) >= 128 {
			break
		}
		list = append(list, '\'')
		list = append(list, clip(cutNUL(a), 128-len(list)+1)...)
		list = append(list, '\'', ' ')
	}
	return fmt.Sprintf("ERR unknown command '%s', with args beginning with: %s", clip(cutNUL(args[0]), 128), list)
}

func cutNUL(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
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

// writesThatShrink are the writes Redis does not flag denyoom: they
// delete data or only change expiry, so they run even when memory is full.
var writesThatShrink = map[string]bool{
	"del": true, "unlink": true, "expire": true, "pexpire": true, "expireat": true, "pexpireat": true, "persist": true,
	"lpop": true, "rpop": true, "lmpop": true, "ltrim": true, "lrem": true, "srem": true, "spop": true, "smove": true,
	"zrem": true, "zpopmin": true, "zpopmax": true, "zmpop": true, "zremrangebyscore": true, "zremrangebyrank": true,
	"zremrangebylex": true, "hdel": true, "getdel": true, "rename": true, "renamenx": true, "flushall": true, "flushdb": true,
}

// DenyOOM reports whether Redis refuses spec over maxmemory (its denyoom
// flag): writes that may grow memory.
func DenyOOM(spec *command.Spec) bool {
	return spec != nil && spec.Is(command.Write) && !writesThatShrink[spec.Name]
}
