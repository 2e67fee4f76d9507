package server

import "testing"

// Every connection command has an arity, so connCommand checks it before
// the handler indexes its arguments.
func TestConnCommandsHaveArity(t *testing.T) {
	for name := range connCommands {
		if connArity[name] == 0 {
			t.Errorf("connection command %q has no arity in connArity", name)
		}
	}
	f := &frontend{}
	for name := range connCommands {
		if a := connArity[name]; a < -1 || a > 1 {
			if reply := string(f.connCommand([][]byte{[]byte(name)}, &connState{})); reply != "-ERR wrong number of arguments for '"+name+"' command\r\n" {
				t.Errorf("%s alone: %q", name, reply)
			}
		}
	}
}
