package resp

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: derive from the clock)")

// testRand returns a seeded generator and logs the seed, so a failing run can
// be replayed with -seed.
func testRand(t testing.TB) *rand.Rand {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// chunkReader hands data out in chunks whose sizes come from next, to
// exercise every way a stream can be split into reads.
type chunkReader struct {
	data []byte
	next func() int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(max(c.next(), 1), len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func randomChunks(data []byte, rng *rand.Rand, maxChunk int) io.Reader {
	return &chunkReader{data: data, next: func() int { return 1 + rng.IntN(maxChunk) }}
}

// step is one Read result of a scriptedReader.
type step struct {
	data string
	err  error
}

// scriptedReader replays reads exactly, including errors returned alongside
// data and errors that are not final.
type scriptedReader struct{ steps []step }

func (s *scriptedReader) Read(p []byte) (int, error) {
	if len(s.steps) == 0 {
		return 0, io.EOF
	}
	st := &s.steps[0]
	n := copy(p, st.data)
	st.data = st.data[n:]
	if st.data != "" {
		return n, nil
	}
	err := st.err
	s.steps = s.steps[1:]
	return n, err
}

// readResult is everything a Reader produced from one stream.
type readResult struct {
	cmds [][]string
	err  error // the error that ended the stream
}

func readAll(t testing.TB, r *Reader) readResult {
	return collect(t, r.ReadCommand)
}

// readAllTrying reads the way a server gathers a pipelined batch: whatever
// is fully buffered without blocking, then a blocking read.
func readAllTrying(t testing.TB, r *Reader) readResult {
	return collect(t, func() ([][]byte, error) {
		args, ok, err := r.TryReadCommand()
		if err == nil && !ok {
			return r.ReadCommand()
		}
		return args, err
	})
}

func collect(t testing.TB, next func() ([][]byte, error)) readResult {
	var res readResult
	for i := 0; ; i++ {
		args, err := next()
		var tl *TooLargeError
		if errors.As(err, &tl) {
			// Not an end: the command was dropped and reading goes on.
			res.cmds = append(res.cmds, []string{fmt.Sprintf("!too large: %d bytes", tl.Len)})
			continue
		}
		if err != nil {
			res.err = err
			return res
		}
		if len(args) == 0 {
			t.Fatalf("command %d: no arguments and no error", i)
		}
		cmd := make([]string, len(args))
		for j, a := range args {
			cmd[j] = string(a)
		}
		res.cmds = append(res.cmds, cmd)
	}
}

func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	var pa, pb *ProtocolError
	if errors.As(a, &pa) && errors.As(b, &pb) {
		return pa.Msg == pb.Msg
	}
	return a == b
}

func equalResults(a, b readResult) bool {
	return sameErr(a.err, b.err) && slices.EqualFunc(a.cmds, b.cmds, slices.Equal[[]string])
}

func cmd(args ...string) []string { return args }

func encode(args ...string) []byte {
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	return AppendCommand(nil, bs...)
}

// loopReader serves data over and over without allocating, standing in for
// a socket that always has the next batch ready.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}
