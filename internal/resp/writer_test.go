package resp

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
)

func TestAppend(t *testing.T) {
	tests := []struct {
		got  []byte
		want string
	}{
		{AppendSimple(nil, "OK"), "+OK\r\n"},
		{AppendSimple(nil, ""), "+\r\n"},
		{AppendSimple(nil, "a\r\n+OK"), "+a  +OK\r\n"},
		{AppendError(nil, "ERR syntax error"), "-ERR syntax error\r\n"},
		{AppendError(nil, "WRONGTYPE bad\nkey\r"), "-WRONGTYPE bad key \r\n"},
		{AppendInt(nil, 0), ":0\r\n"},
		{AppendInt(nil, -42), ":-42\r\n"},
		{AppendInt(nil, math.MinInt64), ":-9223372036854775808\r\n"},
		{AppendBulk(nil, []byte("a\r\nb")), "$4\r\na\r\nb\r\n"},
		{AppendBulk(nil, nil), "$0\r\n\r\n"},
		{AppendBulkString(nil, "hello"), "$5\r\nhello\r\n"},
		{AppendNull(nil), "$-1\r\n"},
		{AppendArrayHeader(nil, 3), "*3\r\n"},
		{AppendNullArray(nil), "*-1\r\n"},
		{AppendCommand(nil, []byte("GET"), []byte("k")), "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"},
		{AppendCommand(nil), "*0\r\n"},
		{AppendInt([]byte("+OK\r\n"), 1), "+OK\r\n:1\r\n"},
	}
	for i, tt := range tests {
		if string(tt.got) != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}

// The caller's string must not be modified by the CR/LF replacement.
func TestAppendSimpleLeavesInputAlone(t *testing.T) {
	msg := string([]byte("ERR a\nb"))
	_ = AppendError(make([]byte, 0, 64), msg)
	if msg != "ERR a\nb" {
		t.Fatalf("input modified: %q", msg)
	}
}

// countingWriter records each Write so tests can see when data left.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.Buffer.Write(p)
}

func TestWriterBuffersUntilFlush(t *testing.T) {
	var cw countingWriter
	w := NewWriter(&cw)
	w.WriteRaw(AppendSimple(nil, "OK"))
	w.WriteRaw(AppendInt(nil, 7))
	if cw.writes != 0 || w.Buffered() != len("+OK\r\n:7\r\n") {
		t.Fatalf("wrote early: %d writes, %d buffered", cw.writes, w.Buffered())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if cw.String() != "+OK\r\n:7\r\n" || cw.writes != 1 || w.Buffered() != 0 {
		t.Fatalf("after Flush: %q in %d writes, %d buffered", cw.String(), cw.writes, w.Buffered())
	}
	if err := w.Flush(); err != nil || cw.writes != 1 {
		t.Fatalf("empty Flush wrote: %v, %d writes", err, cw.writes)
	}
}

func TestWriterBoundsItsBuffer(t *testing.T) {
	var cw countingWriter
	w := NewWriter(&cw)
	reply := AppendBulk(nil, make([]byte, 1000))
	var want []byte
	for range 1000 {
		w.WriteRaw(reply)
		want = append(want, reply...)
		if w.Buffered() > writerFlushAt {
			t.Fatalf("buffered %d bytes, bound is %d", w.Buffered(), writerFlushAt)
		}
	}
	big := AppendBulk(nil, make([]byte, 200<<10))
	w.WriteRaw(big)
	want = append(want, big...)
	if w.Buffered() != 0 {
		t.Fatalf("large reply left %d bytes buffered", w.Buffered())
	}
	w.WriteRaw(reply)
	want = append(want, reply...)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cw.Bytes(), want) {
		t.Fatalf("output differs from input order (%d vs %d bytes)", cw.Len(), len(want))
	}
}

type failWriter struct {
	n   int // bytes accepted per write
	err error
}

func (f failWriter) Write(p []byte) (int, error) { return min(f.n, len(p)), f.err }

func TestWriterErrorsStick(t *testing.T) {
	boom := errors.New("boom")
	w := NewWriter(failWriter{err: boom})
	w.WriteRaw([]byte("+OK\r\n"))
	if err := w.Flush(); err != boom {
		t.Fatalf("Flush = %v, want boom", err)
	}
	w.WriteRaw([]byte("+OK\r\n"))
	if err := w.Flush(); err != boom || w.Buffered() != 0 {
		t.Fatalf("after failure: Flush = %v, %d buffered", err, w.Buffered())
	}

	w = NewWriter(failWriter{n: 2})
	w.WriteRaw([]byte("+OK\r\n"))
	if err := w.Flush(); err != io.ErrShortWrite {
		t.Fatalf("short write: Flush = %v, want io.ErrShortWrite", err)
	}
}
