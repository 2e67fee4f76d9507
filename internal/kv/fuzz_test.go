package kv

import (
	"bytes"
	"testing"
)

// fuzzArgs splits data into an argument list: the first byte is the
// separator, so any byte (NUL, CR, LF, ...) can still appear in arguments.
func fuzzArgs(data []byte) [][]byte {
	if len(data) == 0 {
		return nil
	}
	args := bytes.Split(data[1:], data[:1])
	if len(args) > 64 {
		args = args[:64]
	}
	return args
}

// fuzzState is the state every fuzz input starts from: strings, integers
// at the edges, and a key of another type.
func fuzzState() (*memStore, *model) {
	s, m := newMemStore(), newModel()
	for k, v := range map[string]string{"a": "1", "b": "hello", "c": maxI, "d": minI, "e": ""} {
		m.str[k] = v
		s.m[k] = []byte(sv(v))
		s.created++
	}
	putForeign(s, m, "h")
	return s, m
}

// FuzzApply evaluates arbitrary argument lists: Apply must never panic,
// must answer exactly one well-formed reply, must keep the Writer contract,
// and for known commands must agree with the reference model.
func FuzzApply(f *testing.F) {
	for _, seed := range []string{
		"", " ", " GET a", " SET a 5 NX GET", " SET a 5 NX XX", " SET a 5 EX", " SET a 5 EX 10",
		" INCR a", " INCRBY c 1", " DECRBY d 1", " DECRBY a -9223372036854775808", " INCR b",
		" APPEND b xyz", " MSET a 1 b", " MSET a 1 b 2", " DEL a a h", " EXISTS a a h x",
		" MGET a h x", " STRLEN h", " GETSET h x", " SETNX h x", " foo bar baz",
		"|SET|a b|c\r\n", "\x00set\x00k\x00\x00get", "|", "||", " set a 5 \u212Aeepttl",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		args := fuzzArgs(data)
		s, _ := fuzzState()
		out, err := Apply(s, args, []byte("prev"))
		if err != nil {
			t.Fatalf("%s: storage error %v from a healthy store", showArgs(args), err)
		}
		if !bytes.HasPrefix(out, []byte("prev")) {
			t.Fatalf("%s: reply did not append to out: %q", showArgs(args), out)
		}
		reply := out[4:]
		if rest, err := parseReply(reply); err != nil || len(rest) != 0 {
			t.Fatalf("%s: malformed reply %q: %v (%d trailing bytes)", showArgs(args), reply, err, len(rest))
		}
		s.check(t)
		if len(args) == 0 {
			return
		}
		if c := Lookup(args[0]); c == nil {
			if !bytes.HasPrefix(reply, []byte("-ERR unknown command '")) {
				t.Fatalf("%s: unknown command answered %q", showArgs(args), reply)
			}
			if knownDivergence(args) == "" && string(reply) != errLine(redisUnknownCommand(args)) {
				t.Fatalf("%s:\n got  %q\n want %q", showArgs(args), reply, errLine(redisUnknownCommand(args)))
			}
			return
		}
		// Compare with the model from the same starting state.
		s2, m2 := fuzzState()
		if err := compareStep(s2, m2, args); err != nil {
			t.Fatalf("%s: %v", showArgs(args), err)
		}
	})
}
