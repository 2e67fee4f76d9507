package edge

import (
	"testing"

	"github.com/kintsu/kintsu/internal/command"
)

// Every connection command is registered with an arity, so Decode checks
// it before the handler indexes its arguments, and has a handler.
func TestConnCommandsHaveArity(t *testing.T) {
	for _, s := range command.Specs() {
		if !s.Is(command.Conn) {
			continue
		}
		if _, ok := s.Impl.(connHandler); !ok {
			t.Errorf("connection command %q has no handler", s.Name)
		}
		if s.Arity < -1 || s.Arity > 1 {
			_, err := command.Decode([][]byte{[]byte(s.Name)}, nil)
			if reply := string(ErrorReply(err)); err == nil || reply != "-ERR wrong number of arguments for '"+s.Name+"' command\r\n" {
				t.Errorf("%s alone: %q", s.Name, reply)
			}
		}
	}
}
