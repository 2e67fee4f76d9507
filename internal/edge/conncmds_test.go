package edge

import (
	"bytes"
	"strings"
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

// TestClientReplySilence: CLIENT REPLY OFF silences every reply after it
// (its own too), SKIP the next command's, ON brings them back with its OK;
// a mode left by one batch holds in the next.
func TestClientReplySilence(t *testing.T) {
	cmd := func(args ...string) command.Cmd {
		c, err := command.Decode(bytesOf(args), func([]byte) uint64 { return 0 })
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	run := func(mode replyMode, cmds ...command.Cmd) (string, replyMode) {
		replies := make([][]byte, len(cmds))
		for i, c := range cmds {
			replies[i] = []byte(strings.ToLower(string(c.Args[len(c.Args)-1])) + ";")
		}
		mode = silence(cmds, replies, mode)
		return string(bytes.Join(replies, nil)), mode
	}
	got, mode := run(repliesOn, cmd("GET", "a"), cmd("CLIENT", "REPLY", "SKIP"), cmd("GET", "b"), cmd("GET", "c"))
	if got != "a;skip;c;" || mode != repliesOn {
		t.Fatalf("SKIP: %q, mode %d", got, mode)
	}
	got, mode = run(repliesOn, cmd("GET", "a"), cmd("CLIENT", "REPLY", "OFF"), cmd("GET", "b"))
	if got != "a;off;" || mode != repliesOff {
		t.Fatalf("OFF: %q, mode %d", got, mode)
	}
	got, mode = run(mode, cmd("GET", "c"), cmd("CLIENT", "REPLY", "ON"), cmd("GET", "d"))
	if got != "on;d;" || mode != repliesOn {
		t.Fatalf("ON after OFF: %q, mode %d", got, mode)
	}
	got, mode = run(repliesOn, cmd("CLIENT", "REPLY", "SKIP"))
	if got2, mode2 := run(mode, cmd("GET", "x"), cmd("GET", "y")); got != "skip;" || got2 != "y;" || mode2 != repliesOn {
		t.Fatalf("SKIP across batches: %q then %q, mode %d", got, got2, mode2)
	}
}

func bytesOf(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}
