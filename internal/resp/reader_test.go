package resp

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestProtocolErrors(t *testing.T) {
	long := strings.Repeat("1", 64<<10+1)
	small := Limits{MaxBulkLen: 5, MaxArrayLen: 3, MaxInlineLen: 10, MaxCommandLen: 8}
	tests := []struct {
		name string
		in   string
		lim  Limits
		want string
	}{
		// Cases from Redis's own tests/unit/protocol.tcl.
		{"payload header", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", Limits{}, "Protocol error: expected '$', got 'f'"},
		{"no bulk after mbulk", "*1\r\nfoo\r\n", Limits{}, "Protocol error: expected '$', got 'f'"},
		{"negative bulk length", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n", Limits{}, "Protocol error: invalid bulk length"},
		{"out of range bulk length", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n", Limits{}, "Protocol error: invalid bulk length"},
		{"non-number bulk length", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n", Limits{}, "Protocol error: invalid bulk length"},
		{"out of range mbulk", "*20000000\r\n", Limits{}, "Protocol error: invalid multibulk length"},
		{"out of int range mbulk", "*3000000000\r\n", Limits{}, "Protocol error: invalid multibulk length"},
		{"non-number mbulk", "*blabla\r\n", Limits{}, "Protocol error: invalid multibulk length"},
		{"unbalanced double", "SET k \"v\r\n", Limits{}, "Protocol error: unbalanced quotes in request"},

		{"empty line as bulk header", "*1\r\n\r\n", Limits{}, "Protocol error: expected '$', got '\r'"},
		{"high byte echoed raw", "*1\r\n\xff\r\n", Limits{}, "Protocol error: expected '$', got '\xff'"},
		{"inline where bulk expected", "*2\r\n$4\r\nPING\r\nPING\r\n", Limits{}, "Protocol error: expected '$', got 'P'"},
		{"empty mbulk count", "*\r\n", Limits{}, "Protocol error: invalid multibulk length"},
		{"plus sign mbulk", "*+1\r\n", Limits{}, "Protocol error: invalid multibulk length"},
		{"leading zero mbulk", "*01\r\n", Limits{}, "Protocol error: invalid multibulk length"},
		{"space in mbulk", "*1 \r\n", Limits{}, "Protocol error: invalid multibulk length"},
		{"21 digit mbulk", "*-99999999999999999999\r\n", Limits{}, "Protocol error: invalid multibulk length"},
		{"int64 overflow mbulk", "*-9223372036854775809\r\n", Limits{}, "Protocol error: invalid multibulk length"},
		{"mbulk CR without LF", "*1\rX$1\r\na\r\n", Limits{}, "Protocol error: invalid multibulk length"},
		{"empty bulk count", "*1\r\n$\r\n", Limits{}, "Protocol error: invalid bulk length"},
		{"leading zero bulk", "*1\r\n$03\r\nfoo\r\n", Limits{}, "Protocol error: invalid bulk length"},
		{"minus one bulk", "*1\r\n$-1\r\n", Limits{}, "Protocol error: invalid bulk length"},
		{"bulk CR without LF", "*1\r\n$3\rXfoo\r\n", Limits{}, "Protocol error: invalid bulk length"},
		{"bulk too long for data", "*1\r\n$3\r\nfooX\r\n", Limits{}, "Protocol error: invalid bulk length"},
		{"bulk CR then junk", "*1\r\n$3\r\nfoo\rX", Limits{}, "Protocol error: invalid bulk length"},
		{"bulk LF only", "*1\r\n$3\r\nfoo\n\n", Limits{}, "Protocol error: invalid bulk length"},
		{"19 digit bulk length", "*1\r\n$1234567890123456789\r\n", Limits{}, "Protocol error: invalid bulk length"},
		{"uint64 overflow bulk length", "*1\r\n$99999999999999999999\r\n", Limits{}, "Protocol error: invalid bulk length"},
		{"bulk over what is dropped", "*1\r\n$536870913\r\n", Limits{}, "Protocol error: invalid bulk length"},
		{"too big mbulk count", "*" + long, Limits{}, "Protocol error: too big mbulk count string"},
		{"too big mbulk count with CR", "*" + long + "\r\n", Limits{}, "Protocol error: too big mbulk count string"},
		{"too big bulk count", "*1\r\n$" + long, Limits{}, "Protocol error: too big bulk count string"},
		{"too big inline", strings.Repeat("a", 64<<10+2), Limits{}, "Protocol error: too big inline request"},
		{"too big inline with LF", strings.Repeat("a", 64<<10+1) + "\r\n", Limits{}, "Protocol error: too big inline request"},
		{"unbalanced single", "SET k 'v\r\n", Limits{}, "Protocol error: unbalanced quotes in request"},
		{"escaped closing quote", `GET "k\"` + "\r\n", Limits{}, "Protocol error: unbalanced quotes in request"},
		{"junk after closing double", `GET "k"x` + "\r\n", Limits{}, "Protocol error: unbalanced quotes in request"},
		{"junk after closing single", `GET 'k'x` + "\r\n", Limits{}, "Protocol error: unbalanced quotes in request"},
		{"NUL inside quotes", "GET \"k\x00\"\r\n", Limits{}, "Protocol error: unbalanced quotes in request"},
		{"trailing backslash in quotes", "GET \"k\\\r\n", Limits{}, "Protocol error: unbalanced quotes in request"},

		{"array over limit", "*4\r\n", small, "Protocol error: invalid multibulk length"},
		{"second dropped bulk over what is dropped", "*2\r\n$6\r\nabcdef\r\n$536870913\r\n", small, "Protocol error: invalid bulk length"},
		{"command over limit", "*2\r\n$5\r\naaaaa\r\n$4\r\n", small, "Protocol error: invalid bulk length"},
		{"mbulk count over inline limit", "*00000000001", small, "Protocol error: too big mbulk count string"},
		{"bulk count over inline limit", "*1\r\n$1234\r\n", Limits{MaxInlineLen: 3}, "Protocol error: too big bulk count string"},
		{"inline line over limit", "12345678901\r\n", small, "Protocol error: too big inline request"},
		{"inline args over limit", "a b c d\r\n", small, "Protocol error: too big inline request"},
		{"inline arg over limit", "abcdef\r\n", small, "Protocol error: too big inline request"},
		{"inline total over limit", "abcde fghi\r\n", small, "Protocol error: too big inline request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []string{"whole", "bytewise"} {
				var src io.Reader = strings.NewReader(tt.in)
				if mode == "bytewise" {
					src = iotest.OneByteReader(src)
				}
				r := NewReader(src, tt.lim)
				args, err := r.ReadCommand()
				var pe *ProtocolError
				if !errors.As(err, &pe) {
					t.Fatalf("%s: got %q, %v; want protocol error %q", mode, args, err, tt.want)
				}
				if pe.Error() != tt.want {
					t.Fatalf("%s: got %q, want %q", mode, pe.Error(), tt.want)
				}
				// The stream position after a protocol error is meaningless,
				// so the error must stick.
				if _, err2 := r.ReadCommand(); err2 != err {
					t.Fatalf("%s: second read gave %v, want the same error", mode, err2)
				}
			}
		})
	}
}

func TestLimitsAtBoundary(t *testing.T) {
	lim := Limits{MaxBulkLen: 5, MaxArrayLen: 3, MaxInlineLen: 10, MaxCommandLen: 12}
	in := "*3\r\n$5\r\naaaaa\r\n$5\r\nbbbbb\r\n$2\r\ncc\r\n" +
		"12345 6789\r\n" +
		"1234 5\n"
	got := readAll(t, NewReader(strings.NewReader(in), lim))
	want := readResult{cmds: [][]string{
		cmd("aaaaa", "bbbbb", "cc"),
		cmd("12345", "6789"),
		cmd("1234", "5"),
	}, err: io.EOF}
	if !equalResults(got, want) {
		t.Fatalf("got %q, %v; want %q", got.cmds, got.err, want.cmds)
	}
}

func TestDefaultLimits(t *testing.T) {
	d := DefaultLimits()
	if d.MaxBulkLen != 16<<20 || d.MaxArrayLen != 1<<20 || d.MaxInlineLen != 64<<10 || d.MaxCommandLen != 64<<20 {
		t.Fatalf("DefaultLimits() = %+v", d)
	}
	r := NewReader(strings.NewReader(""), Limits{MaxBulkLen: 7})
	want := d
	want.MaxBulkLen = 7
	if r.lim.MaxBulkLen != want.MaxBulkLen || r.lim.MaxArrayLen != want.MaxArrayLen || r.lim.MaxInlineLen != want.MaxInlineLen || r.lim.MaxCommandLen != want.MaxCommandLen {
		t.Fatalf("zero fields not defaulted: %+v", r.lim)
	}
}

func TestInline(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"PING\r\n", cmd("PING")},
		{"PING\n", cmd("PING")},
		{"  SET   a  b \t\r\n", cmd("SET", "a", "b")},
		{`SET k "hello world"` + "\r\n", cmd("SET", "k", "hello world")},
		{`SET k "a\nb\rc\td\be\af\\g\"h\zi"` + "\r\n", cmd("SET", "k", "a\nb\rc\td\be\af\\g\"hzi")},
		{`"\x41\x4a\x4A\xzz\x4"` + "\n", cmd("AJJxzzx4")},
		{`"\x00\xff"` + "\n", cmd("\x00\xff")},
		{`'it\'s' 'a\nb' 'c\\d'` + "\n", cmd("it's", `a\nb`, `c\\d`)},
		{`'' "" x` + "\n", cmd("", "", "x")},
		{`a"b c"` + "\n", cmd("ab c")},
		{`a'b c' d` + "\n", cmd("ab c", "d")},
		{"\"x\"\v\"y\"\f\n", cmd("x", "y")},
		{"a\vb \fc\n", cmd("a\vb", "c")},
		{"a\rb\r\n", cmd("a", "b")},
		{"\"a\rb\"\r\n", cmd("a\rb")},
		{"\"foo\"\r\r\n", cmd("foo")},
		{"GET a\x00junk \"\r\n", cmd("GET", "a")},
		{"\xff\xfe k\n", cmd("\xff\xfe", "k")},
		{" *1\r\n", cmd("*1")}, // only a '*' in first position starts an array
		{"$3\r\n", cmd("$3")},
	}
	for _, tt := range tests {
		got := readAll(t, NewReader(strings.NewReader(tt.in), Limits{}))
		want := readResult{cmds: [][]string{tt.want}, err: io.EOF}
		if !equalResults(got, want) {
			t.Errorf("%q: got %q, %v; want %q", tt.in, got.cmds, got.err, tt.want)
		}
	}
}

func TestSkipsEmptyCommands(t *testing.T) {
	in := "*0\r\n*-1\r\n*-10\r\n*-9223372036854775808\r\n\r\n\n   \r\n\x00ignored\r\nPING\r\n*0\r\n\r\n"
	got := readAll(t, NewReader(strings.NewReader(in), Limits{}))
	want := readResult{cmds: [][]string{cmd("PING")}, err: io.EOF}
	if !equalResults(got, want) {
		t.Fatalf("got %q, %v; want %q, EOF", got.cmds, got.err, want.cmds)
	}
}

func TestEOF(t *testing.T) {
	tests := []struct {
		in   string
		cmds [][]string
		err  error
	}{
		{"", nil, io.EOF},
		{"PING\r\n", [][]string{cmd("PING")}, io.EOF},
		{"*0\r\n", nil, io.EOF},
		{"\r\n", nil, io.EOF},
		{string(encode("GET", "k")), [][]string{cmd("GET", "k")}, io.EOF},
		{"PING", nil, io.ErrUnexpectedEOF},
		{"PING\r", nil, io.ErrUnexpectedEOF},
		{"  ", nil, io.ErrUnexpectedEOF},
		{"*", nil, io.ErrUnexpectedEOF},
		{"*1", nil, io.ErrUnexpectedEOF},
		{"*1\r", nil, io.ErrUnexpectedEOF},
		{"*1\r\n", nil, io.ErrUnexpectedEOF},
		{"*1\r\n$3\r", nil, io.ErrUnexpectedEOF},
		{"*1\r\n$3\r\nfo", nil, io.ErrUnexpectedEOF},
		{"*1\r\n$3\r\nfoo", nil, io.ErrUnexpectedEOF},
		{"*1\r\n$3\r\nfoo\r", nil, io.ErrUnexpectedEOF},
		{"PING\r\n*2\r\n$3\r\nGET\r\n", [][]string{cmd("PING")}, io.ErrUnexpectedEOF},
	}
	readers := map[string]func(string) io.Reader{
		"whole":    func(s string) io.Reader { return strings.NewReader(s) },
		"bytewise": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"data+EOF": func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
		"half":     func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
	}
	for _, tt := range tests {
		for name, mk := range readers {
			r := NewReader(mk(tt.in), Limits{})
			got := readAll(t, r)
			want := readResult{cmds: tt.cmds, err: tt.err}
			if !equalResults(got, want) {
				t.Errorf("%s %q: got %q, %v; want %q, %v", name, tt.in, got.cmds, got.err, tt.cmds, tt.err)
			}
		}
	}
}

// A read error that is not the end of the stream, such as a deadline, must
// leave the reader able to finish the command once reads succeed again.
func TestResumeAfterReadError(t *testing.T) {
	errTimeout := errors.New("i/o timeout")
	src := &scriptedReader{steps: []step{
		{"PING\r\n*2\r\n$3\r\nGET\r\n$5\r\nke", errTimeout},
		{"y:1", nil},
		{"", errTimeout},
		{"\r\nPI", nil},
		{"NG\r\n", io.EOF},
	}}
	r := newReaderSize(src, Limits{}, 8)
	var got []string
	var errs int
	for {
		args, err := r.ReadCommand()
		if err == io.EOF {
			break
		}
		if err == errTimeout {
			errs++
			continue
		}
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		got = append(got, string(bytes.Join(args, []byte(" "))))
	}
	want := []string{"PING", "GET key:1", "PING"}
	if !slices.Equal(got, want) || errs != 2 {
		t.Fatalf("got %q with %d timeouts; want %q with 2", got, errs, want)
	}
}

// pipeline is a stream mixing every kind of input, including bulks larger
// than a small read buffer, for the splitting tests.
func pipeline() ([]byte, readResult) {
	var b []byte
	var want readResult
	add := func(enc []byte, args ...string) {
		b = append(b, enc...)
		if len(args) > 0 {
			want.cmds = append(want.cmds, args)
		}
	}
	add(encode("SET", "key:1", "value"), "SET", "key:1", "value")
	add([]byte("*0\r\n"))
	add([]byte("GET \"key:1\"\r\n"), "GET", "key:1")
	add(encode("SET", "bin", "a\r\nb\x00c"), "SET", "bin", "a\r\nb\x00c")
	add([]byte("\r\n"))
	add(encode(""), "")
	add([]byte("*-1\r\n"))
	add([]byte("ECHO 'x y'\n"), "ECHO", "x y")
	add(encode("MSET", "a", "1", "b", "2"), "MSET", "a", "1", "b", "2")
	add([]byte("PING\r\n"), "PING")
	want.err = io.EOF
	return b, want
}

func TestPipelineSplitAtEveryByte(t *testing.T) {
	data, want := pipeline()
	for i := 0; i <= len(data); i++ {
		for _, size := range []int{defaultBufSize, 7} {
			src := io.MultiReader(bytes.NewReader(data[:i]), bytes.NewReader(data[i:]))
			got := readAll(t, newReaderSize(src, Limits{}, size))
			if !equalResults(got, want) {
				t.Fatalf("split at %d, buffer %d: got %q, %v; want %q", i, size, got.cmds, got.err, want.cmds)
			}
		}
	}
}

func TestPipelineChunked(t *testing.T) {
	rng := testRand(t)
	data, want := pipeline()
	big := bytes.Repeat([]byte("0123456789"), 7000) // spans several 16 KiB buffers
	data = append(data, AppendCommand(nil, []byte("SET"), []byte("big"), big)...)
	want.cmds = append(want.cmds, cmd("SET", "big", string(big)))
	data = append(data, encode("GET", "big")...)
	want.cmds = append(want.cmds, cmd("GET", "big"))

	check := func(name string, src io.Reader, size int) {
		t.Helper()
		got := readAll(t, newReaderSize(src, Limits{}, size))
		if !equalResults(got, want) {
			t.Fatalf("%s, buffer %d: got %d commands, %v; want %d", name, size, len(got.cmds), got.err, len(want.cmds))
		}
	}
	for _, size := range []int{defaultBufSize, 1, 16, 100} {
		check("one byte", iotest.OneByteReader(bytes.NewReader(data)), size)
		got := readAllTrying(t, newReaderSize(randomChunks(data, rng, 1+rng.IntN(300)), Limits{}, size))
		if !equalResults(got, want) {
			t.Fatalf("trying, buffer %d: got %d commands, %v; want %d", size, len(got.cmds), got.err, len(want.cmds))
		}
		for range 20 {
			check("random chunks", randomChunks(data, rng, 1+rng.IntN(40000)), size)
		}
	}
}

func TestRoundTripRandom(t *testing.T) {
	rng := testRand(t)
	var stream []byte
	var want readResult
	for range 500 {
		args := make([][]byte, 1+rng.IntN(12))
		strs := make([]string, len(args))
		for i := range args {
			n := rng.IntN(40)
			switch rng.IntN(20) {
			case 0:
				n = rng.IntN(100000)
			case 1:
				n = 0
			}
			a := make([]byte, n)
			for j := range a {
				const alphabet = "ab\r\n\x00$*\"' \xff"
				a[j] = alphabet[rng.IntN(len(alphabet))]
			}
			args[i], strs[i] = a, string(a)
		}
		stream = AppendCommand(stream, args...)
		want.cmds = append(want.cmds, strs)
	}
	want.err = io.EOF
	for _, size := range []int{defaultBufSize, 3} {
		got := readAll(t, newReaderSize(randomChunks(stream, rng, 1+rng.IntN(1<<16)), Limits{}, size))
		if !equalResults(got, want) {
			t.Fatalf("buffer %d: round trip mismatch (%d commands, %v)", size, len(got.cmds), got.err)
		}
	}
}

// countingReader counts calls so a test can prove a read did not happen.
type countingReader struct {
	io.Reader
	calls int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.calls++
	return c.Reader.Read(p)
}

func TestTryReadCommand(t *testing.T) {
	src := &countingReader{Reader: &scriptedReader{steps: []step{
		{string(encode("GET", "a")) + string(encode("GET", "b")) + "*2\r\n$3\r\nGE", nil},
		{"T\r\n$1\r\nc\r\n*1\r\nfoo\r\n", io.EOF},
	}}}
	r := NewReader(src, Limits{})
	expect := func(what string, args [][]byte, ok bool, err error, want string, wantOK bool) {
		t.Helper()
		if err != nil || ok != wantOK || string(bytes.Join(args, []byte(" "))) != want {
			t.Fatalf("%s: got %q, %v, %v; want %q, %v", what, args, ok, err, want, wantOK)
		}
	}
	args, err := r.ReadCommand()
	expect("first read", args, true, err, "GET a", true)
	args, ok, err := r.TryReadCommand()
	expect("buffered command", args, ok, err, "GET b", true)
	calls := src.calls
	args, ok, err = r.TryReadCommand()
	expect("partial command", args, ok, err, "", false)
	if src.calls != calls {
		t.Fatalf("TryReadCommand read from the connection")
	}
	args, err = r.ReadCommand()
	expect("completed command", args, true, err, "GET c", true)
	// A fully buffered protocol error is reported without blocking.
	if _, ok, err = r.TryReadCommand(); ok || err == nil || err.Error() != "Protocol error: expected '$', got 'f'" {
		t.Fatalf("buffered protocol error: got %v, %v", ok, err)
	}

	r = NewReader(strings.NewReader(""), Limits{})
	if args, ok, err := r.TryReadCommand(); args != nil || ok || err != nil {
		t.Fatalf("empty buffer: got %q, %v, %v; want nothing", args, ok, err)
	}
	if _, err := r.ReadCommand(); err != io.EOF {
		t.Fatalf("after TryReadCommand, ReadCommand = %v, want io.EOF", err)
	}
}

func TestBuffered(t *testing.T) {
	first, second := encode("GET", "a"), encode("GET", "b")
	r := NewReader(bytes.NewReader(append(first, second...)), Limits{})
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if got := r.Buffered(); got != len(second) {
		t.Fatalf("Buffered() = %d after first command, want %d", got, len(second))
	}
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if got := r.Buffered(); got != 0 {
		t.Fatalf("Buffered() = %d at end, want 0", got)
	}
}

// Appending to a returned argument must not overwrite the next one.
func TestArgsCapacityClipped(t *testing.T) {
	r := NewReader(bytes.NewReader(encode("SET", "k", "v")), Limits{})
	args, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	_ = append(args[0], "XXXXXXXX"...)
	if string(args[1]) != "k" || string(args[2]) != "v" {
		t.Fatalf("append to args[0] clobbered the rest: %q", args)
	}
}

// allocatedBy reports the bytes allocated while f runs.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestDeclaredSizesAreNotTrusted(t *testing.T) {
	tests := []struct {
		name   string
		in     []byte
		budget uint64
	}{
		{"huge bulk, no data", []byte("*1\r\n$16000000\r\n"), 128 << 10},
		{"huge array, no data", []byte("*1048576\r\n"), 128 << 10},
		{"huge array, one arg", []byte("*1048576\r\n$1\r\na\r\n"), 128 << 10},
		// 1 MiB actually sent: growth may double past it, never toward 16 MB.
		{"huge bulk, 1 MiB sent", append([]byte("*1\r\n$16000000\r\n"), make([]byte, 1<<20)...), 5 << 20},
	}
	for _, tt := range tests {
		var err error
		n := allocatedBy(func() {
			r := NewReader(bytes.NewReader(tt.in), Limits{})
			_, err = r.ReadCommand()
		})
		if err != io.ErrUnexpectedEOF {
			t.Errorf("%s: got %v, want unexpected EOF", tt.name, err)
		}
		if n > tt.budget {
			t.Errorf("%s: allocated %d bytes, budget %d", tt.name, n, tt.budget)
		}
		t.Logf("%s: allocated %d bytes", tt.name, n)
	}
}

// After a command that forced the buffer to grow, the reader returns to its
// normal footprint instead of pinning the large buffer.
func TestBufferShrinksAfterLargeCommand(t *testing.T) {
	big := make([]byte, 1<<20)
	in := append(AppendCommand(nil, []byte("SET"), []byte("k"), big), encode("PING")...)
	r := NewReader(bytes.NewReader(in), Limits{})
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if len(r.buf) < 1<<20 {
		t.Fatalf("buffer %d bytes while holding a 1 MiB argument", len(r.buf))
	}
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if len(r.buf) != defaultBufSize {
		t.Fatalf("buffer %d bytes after the large command, want %d", len(r.buf), defaultBufSize)
	}
}

func TestReadCommandDoesNotAllocate(t *testing.T) {
	var batch []byte
	for i := range 16 {
		batch = append(batch, encode("SET", "key:"+string(rune('a'+i)), strings.Repeat("v", 100))...)
	}
	batch = append(batch, "GET \"key:a\"\r\n"...)
	r := NewReader(&loopReader{data: batch}, Limits{})
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := r.ReadCommand(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ReadCommand allocated %.2f times per command", allocs)
	}
}

func TestInvalidReaderCount(t *testing.T) {
	r := NewReader(badReader{}, Limits{})
	if _, err := r.ReadCommand(); err == nil || err == io.EOF {
		t.Fatalf("got %v, want an error for an impossible read count", err)
	}
	r = NewReader(emptyReader{}, Limits{})
	if _, err := r.ReadCommand(); err != io.ErrNoProgress {
		t.Fatalf("got %v, want io.ErrNoProgress", err)
	}
}

type badReader struct{}

func (badReader) Read(p []byte) (int, error) { return len(p) + 1, nil }

type emptyReader struct{}

func (emptyReader) Read(p []byte) (int, error) { return 0, nil }

func TestParseInt(t *testing.T) {
	tests := []struct {
		in string
		v  int64
		ok bool
	}{
		{"0", 0, true}, {"1", 1, true}, {"-1", -1, true}, {"123", 123, true},
		{"9223372036854775807", 1<<63 - 1, true}, {"-9223372036854775808", -1 << 63, true},
		{"9223372036854775808", 0, false}, {"-9223372036854775809", 0, false},
		{"18446744073709551616", 0, false}, {"99999999999999999999", 0, false},
		{"", 0, false}, {"-", 0, false}, {"-0", 0, false}, {"00", 0, false}, {"01", 0, false},
		{"+1", 0, false}, {" 1", 0, false}, {"1 ", 0, false}, {"1a", 0, false}, {"--1", 0, false},
	}
	for _, tt := range tests {
		v, ok := parseInt([]byte(tt.in))
		if v != tt.v || ok != tt.ok {
			t.Errorf("parseInt(%q) = %d, %v; want %d, %v", tt.in, v, ok, tt.v, tt.ok)
		}
	}
}

// TestOversizedArgumentIsDroppedAndReadingGoesOn: an argument over
// MaxBulkLen (but within what is dropped) makes its command a
// TooLargeError, read and dropped whole without growing the buffer, and
// the next command reads as usual — in whole reads, byte by byte, and
// through TryReadCommand as bytes trickle in.
func TestOversizedArgumentIsDroppedAndReadingGoesOn(t *testing.T) {
	big := strings.Repeat("x", 5000)
	in := "*3\r\n$3\r\nSET\r\n$5000\r\n" + big + "\r\n$4\r\ntail\r\n*1\r\n$4\r\nPING\r\n"
	lim := Limits{MaxBulkLen: 1000}
	for _, mode := range []string{"whole", "bytewise"} {
		var src io.Reader = strings.NewReader(in)
		if mode == "bytewise" {
			src = iotest.OneByteReader(src)
		}
		r := newReaderSize(src, lim, 64)
		_, err := r.ReadCommand()
		var tl *TooLargeError
		if !errors.As(err, &tl) || tl.Len != 5000 || tl.Limit != 1000 {
			t.Fatalf("%s: %v, want a TooLargeError of 5000 bytes", mode, err)
		}
		if len(r.buf) > 128 {
			t.Fatalf("%s: the buffer grew to %d for a dropped argument", mode, len(r.buf))
		}
		args, err := r.ReadCommand()
		if err != nil || len(args) != 1 || string(args[0]) != "PING" {
			t.Fatalf("%s: next command %q, %v", mode, args, err)
		}
		if _, err := r.ReadCommand(); err != io.EOF {
			t.Fatalf("%s: then %v, want EOF", mode, err)
		}
	}
	// TryReadCommand resumes a drop where the bytes ran out.
	pr, pw := io.Pipe()
	r := newReaderSize(pr, lim, 64)
	go func() {
		for i := 0; i < len(in); i += 700 {
			_, _ = pw.Write([]byte(in[i:min(i+700, len(in))]))
		}
		pw.Close()
	}()
	var got []string
	for {
		args, ok, err := r.TryReadCommand()
		if err == nil && !ok {
			args, err = r.ReadCommand()
		}
		var tl *TooLargeError
		switch {
		case errors.As(err, &tl):
			got = append(got, "too large")
		case err == io.EOF:
			if strings.Join(got, ",") != "too large,PING" {
				t.Fatalf("through TryReadCommand: %q", got)
			}
			return
		case err != nil:
			t.Fatal(err)
		default:
			got = append(got, string(args[0]))
		}
	}
}

// TestDropResumesAfterReadError: a read error while an oversized command
// is being dropped (a deadline, an error delivered with data) leaves the
// drop where it was; the next read finishes it and the command after it
// reads whole. The end of input mid-drop is unexpected, every time.
func TestDropResumesAfterReadError(t *testing.T) {
	errTimeout := errors.New("i/o timeout")
	lim := Limits{MaxBulkLen: 40}
	src := &scriptedReader{steps: []step{
		{"*2\r\n$41\r\n" + strings.Repeat("x", 10), errTimeout},
		{strings.Repeat("x", 31) + "\r\n", errTimeout},
		{"$3\r\nfo", errTimeout},
		{"o\r\n*1\r\n$4\r\nPING\r\n", io.EOF},
	}}
	r := newReaderSize(src, lim, 16)
	var got []string
	for {
		args, err := r.ReadCommand()
		var tl *TooLargeError
		switch {
		case err == io.EOF:
			if strings.Join(got, ",") != "too large,PING" {
				t.Fatalf("got %q", got)
			}
			// A drop cut by the end of input stays unexpected.
			r2 := newReaderSize(strings.NewReader("*1\r\n$41\r\nxx"), lim, 16)
			for i := 0; i < 2; i++ {
				if _, err := r2.ReadCommand(); err != io.ErrUnexpectedEOF {
					t.Fatalf("read %d of a cut drop: %v", i, err)
				}
			}
			return
		case err == errTimeout:
			continue
		case errors.As(err, &tl):
			got = append(got, "too large")
		case err != nil:
			t.Fatalf("after %q: %v", got, err)
		default:
			got = append(got, string(args[0]))
		}
	}
}

// TestDroppedBulkMustEndWithCRLF: a dropped payload not followed by CRLF
// is a protocol error, as a kept one is, so a wrong length never sets
// where the next command starts.
func TestDroppedBulkMustEndWithCRLF(t *testing.T) {
	in := "*1\r\n$41\r\n" + strings.Repeat("x", 41) + "XY*1\r\n$4\r\nPING\r\n"
	r := NewReader(strings.NewReader(in), Limits{MaxBulkLen: 40})
	_, err := r.ReadCommand()
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Msg != msgInvalidBulk {
		t.Fatalf("%v, want %q", err, msgInvalidBulk)
	}
}
