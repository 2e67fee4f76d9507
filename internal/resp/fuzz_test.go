package resp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// fuzzLimits are small so that the fuzzer reaches every limit check with
// short inputs.
var fuzzLimits = Limits{MaxBulkLen: 40, MaxArrayLen: 6, MaxInlineLen: 60, MaxCommandLen: 100}

var knownMessages = []string{
	msgTooBigInline, msgUnbalanced, msgTooBigMbulk, msgInvalidMbulk, msgTooBigBulkCount, msgInvalidBulk,
}

// fuzzArgs turns fuzz bytes into a command that is valid under fuzzLimits.
func fuzzArgs(extra []byte) [][]byte {
	args := bytes.Split(extra, []byte{','})
	args = args[:min(len(args), fuzzLimits.MaxArrayLen)]
	room := fuzzLimits.MaxCommandLen
	for i, a := range args {
		a = a[:min(len(a), fuzzLimits.MaxBulkLen, room)]
		room -= len(a)
		args[i] = a
	}
	return args
}

func checkLimits(t *testing.T, res readResult) {
	for _, c := range res.cmds {
		total := 0
		if len(c) == 1 && strings.HasPrefix(c[0], "!too large") {
			continue
		}
		for _, a := range c {
			if len(a) > fuzzLimits.MaxBulkLen {
				t.Fatalf("argument of %d bytes exceeds MaxBulkLen", len(a))
			}
			total += len(a)
		}
		if len(c) > fuzzLimits.MaxArrayLen || total > fuzzLimits.MaxCommandLen {
			t.Fatalf("command of %d args, %d bytes exceeds limits", len(c), total)
		}
	}
	var pe *ProtocolError
	switch {
	case res.err == io.EOF, res.err == io.ErrUnexpectedEOF:
	case errors.As(res.err, &pe):
		known := strings.HasPrefix(pe.Msg, "Protocol error: expected '$', got '") && len(pe.Msg) == len("Protocol error: expected '$', got 'X'")
		for _, m := range knownMessages {
			known = known || pe.Msg == m
		}
		if !known {
			t.Fatalf("unexpected protocol error text %q", pe.Msg)
		}
	default:
		t.Fatalf("unexpected error %v", res.err)
	}
}

func FuzzReader(f *testing.F) {
	seeds := []string{
		"",
		"PING\r\n",
		"*1\r\n$4\r\nPING\r\n",
		"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n",
		"*0\r\n*-1\r\n\r\n\n",
		"SET k \"a\\x41\\n\\\"b\" 'c\\'d'\r\n",
		"SET k \"unterminated\r\n",
		"a\"b c\"\v'd'\f\x00tail\n",
		"*1\r\n$16000000\r\n",
		"*1048576\r\n",
		"*1\r\nfoo\r\n",
		"*1\r\n$3\r\nfooXY",
		"*1\r\n$-1\r\n",
		"*-9223372036854775808\r\n",
		"*1\rX",
		"*" + strings.Repeat("1", 100),
		strings.Repeat("x", 100),
	}
	for i, s := range seeds {
		f.Add([]byte(s), []byte("SET,key,value"), uint8(i))
	}
	f.Add([]byte("PING\r\n"), []byte(""), uint8(0))
	f.Add([]byte("*1\r\n$0\r\n\r\n"), []byte(",,,,,,,,,"), uint8(3))

	f.Fuzz(func(t *testing.T, data, extra []byte, chunk uint8) {
		// Reading all at once is the reference; any other split into reads,
		// and any buffer size, must give the same commands and error.
		whole := readAll(t, NewReader(bytes.NewReader(data), fuzzLimits))
		checkLimits(t, whole)

		size := 1 + int(chunk%32)
		i := 0
		chunked := &chunkReader{data: data, next: func() int { i++; return 1 + (i*int(chunk))%17 }}
		for name, src := range map[string]io.Reader{
			"one byte": iotest.OneByteReader(bytes.NewReader(data)),
			"chunked":  chunked,
		} {
			got := readAll(t, newReaderSize(src, fuzzLimits, size))
			if !equalResults(got, whole) {
				t.Fatalf("%s, buffer %d: got %q, %v; whole read gave %q, %v", name, size, got.cmds, got.err, whole.cmds, whole.err)
			}
		}
		i = 0
		chunked = &chunkReader{data: data, next: func() int { i++; return 1 + (i*int(chunk))%17 }}
		if got := readAllTrying(t, newReaderSize(chunked, fuzzLimits, size)); !equalResults(got, whole) {
			t.Fatalf("trying, buffer %d: got %q, %v; whole read gave %q, %v", size, got.cmds, got.err, whole.cmds, whole.err)
		}

		// After a clean end, a valid encoding appended to the stream must
		// come back as exactly its arguments.
		if whole.err != io.EOF {
			return
		}
		args := fuzzArgs(extra)
		stream := AppendCommand(bytes.Clone(data), args...)
		want := readResult{cmds: whole.cmds, err: io.EOF}
		strs := make([]string, len(args))
		for j, a := range args {
			strs[j] = string(a)
		}
		want.cmds = append(want.cmds[:len(want.cmds):len(want.cmds)], strs)
		got := readAll(t, newReaderSize(bytes.NewReader(stream), fuzzLimits, size))
		if !equalResults(got, want) {
			t.Fatalf("appended %q: got %q, %v; want %q", args, got.cmds, got.err, want.cmds)
		}
	})
}

func FuzzParseValue(f *testing.F) {
	seeds := [][]byte{
		AppendSimple(nil, "OK"),
		AppendError(nil, "ERR unknown command"),
		AppendInt(nil, -1),
		AppendBulk(nil, []byte("a\r\nb")),
		AppendNull(nil),
		AppendNullArray(nil),
		AppendCommand(nil, []byte("SET"), []byte("k"), []byte("v")),
		append(AppendArrayHeader(nil, 2), "*1\r\n:1\r\n$-1\r\n"...),
		nested(maxDepth+1, nil),
		[]byte("*9223372036854775807\r\n"),
		[]byte("$9223372036854775807\r\n"),
		[]byte(":-9223372036854775808\r\n"),
		[]byte("+a\rb\r\n"),
		[]byte("$3\r\nabcd"),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, n, err := ParseValue(data)
		if err != nil {
			var pe *ProtocolError
			if err != ErrIncomplete && !errors.As(err, &pe) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		if n <= 0 || n > len(data) {
			t.Fatalf("consumed %d of %d bytes", n, len(data))
		}
		// The parser accepts only canonical encodings, so re-encoding must
		// reproduce the input exactly.
		if re := appendValue(nil, v); !bytes.Equal(re, data[:n]) {
			t.Fatalf("re-encoded %q as %q", data[:n], re)
		}
		if n <= 1024 {
			for i := range n {
				if _, _, err := ParseValue(data[:i]); err != ErrIncomplete {
					t.Fatalf("prefix %q of %q: got %v, want ErrIncomplete", data[:i], data[:n], err)
				}
			}
		}
	})
}
