package resp

import (
	"io"
	"strconv"
)

// The Append functions encode RESP2 replies onto b, growing it as append
// does. They serve both the connection Writer and code that stores replies
// as raw bytes, which is why they work on plain slices.

// AppendSimple appends a status reply, +s. CR and LF become spaces: a status
// line cannot carry them, and letting them through would let the text forge
// further replies.
func AppendSimple(b []byte, s string) []byte {
	b = append(b, '+')
	return appendLine(b, s)
}

// AppendError appends an error reply. msg is the full text including its
// code, e.g. "ERR syntax error" or "WRONGTYPE ...". CR and LF become spaces,
// as Redis does for error replies.
func AppendError(b []byte, msg string) []byte {
	b = append(b, '-')
	return appendLine(b, msg)
}

func appendLine(b []byte, s string) []byte {
	start := len(b)
	b = append(b, s...)
	for i := start; i < len(b); i++ {
		if b[i] == '\r' || b[i] == '\n' {
			b[i] = ' '
		}
	}
	return append(b, '\r', '\n')
}

// AppendInt appends an integer reply, :n.
func AppendInt(b []byte, n int64) []byte {
	b = append(b, ':')
	b = strconv.AppendInt(b, n, 10)
	return append(b, '\r', '\n')
}

// AppendBulk appends v as a bulk string. A nil v is an empty bulk string, not
// a null: nulls are explicit via AppendNull.
func AppendBulk(b []byte, v []byte) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(v)), 10)
	b = append(b, '\r', '\n')
	b = append(b, v...)
	return append(b, '\r', '\n')
}

// AppendBulkString appends s as a bulk string.
func AppendBulkString(b []byte, s string) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, '\r', '\n')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// AppendNull appends the null bulk string, $-1.
func AppendNull(b []byte) []byte {
	return append(b, "$-1\r\n"...)
}

// AppendArrayHeader appends the header of an n-element array; the caller
// appends the n elements after it.
func AppendArrayHeader(b []byte, n int) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// AppendNullArray appends the null array, *-1.
func AppendNullArray(b []byte) []byte {
	return append(b, "*-1\r\n"...)
}

// AppendCommand appends a command as a client sends it: an array of bulk
// strings.
func AppendCommand(b []byte, args ...[]byte) []byte {
	b = AppendArrayHeader(b, len(args))
	for _, a := range args {
		b = AppendBulk(b, a)
	}
	return b
}

// writerFlushAt bounds what a Writer holds: a long pipeline of large replies
// is streamed out rather than accumulated until the caller's Flush.
const writerFlushAt = 64 << 10

// Writer buffers encoded replies for one connection so that the replies to a
// pipelined batch leave in few writes.
//
// WriteRaw has no error result so that reply code stays simple; once a write
// fails the Writer discards further output and Flush reports the error, which
// is when the server acts on it anyway.
type Writer struct {
	w   io.Writer
	buf []byte
	err error
}

// NewWriter returns a Writer buffering writes to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, buf: make([]byte, 0, 4096)}
}

// WriteRaw appends already-encoded RESP. It writes through to the
// underlying writer by itself once 64 KiB are pending, and sends a large p
// directly rather than copying it.
func (w *Writer) WriteRaw(p []byte) {
	if w.err != nil {
		return
	}
	if len(w.buf)+len(p) <= writerFlushAt {
		w.buf = append(w.buf, p...)
		return
	}
	if len(p) >= writerFlushAt {
		if w.flush() == nil {
			w.write(p)
		}
		return
	}
	w.buf = append(w.buf, p...)
	w.flush()
}

// Buffered reports how many bytes are waiting for Flush.
func (w *Writer) Buffered() int { return len(w.buf) }

// Flush writes everything buffered. After a write error every later Flush
// returns that error.
func (w *Writer) Flush() error { return w.flush() }

func (w *Writer) flush() error {
	if w.err != nil || len(w.buf) == 0 {
		return w.err
	}
	w.write(w.buf)
	w.buf = w.buf[:0]
	return w.err
}

func (w *Writer) write(p []byte) {
	n, err := w.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = err
		w.buf = nil
	}
}
