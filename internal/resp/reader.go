package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Limits bound every input size so that no input can make a node allocate
// without bound. A zero or negative field means "use the default", so callers
// can override one limit without restating the others.
type Limits struct {
	MaxBulkLen    int // longest bulk string argument; default 16 MiB (Redis's proto-max-bulk-len is 512 MB; we are stricter)
	MaxArrayLen   int // most arguments in one command; default 1<<20
	MaxInlineLen  int // longest inline command line; default 64 KiB (Redis PROTO_INLINE_MAX_SIZE)
	MaxCommandLen int // total bytes of one command's arguments; default 64 MiB
	// Buffer, if set, is called before the reader's buffer is reallocated
	// to n bytes: grown for a large command, or returned to its initial
	// size. An error refuses the growth and is returned by the read that
	// needed it, so a server can bound the memory of its readers together.
	Buffer func(n int) error
}

// DefaultLimits returns the limits a server uses unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{
		MaxBulkLen:    16 << 20,
		MaxArrayLen:   1 << 20,
		MaxInlineLen:  64 << 10,
		MaxCommandLen: 64 << 20,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBulkLen <= 0 {
		l.MaxBulkLen = d.MaxBulkLen
	}
	if l.MaxArrayLen <= 0 {
		l.MaxArrayLen = d.MaxArrayLen
	}
	if l.MaxInlineLen <= 0 {
		l.MaxInlineLen = d.MaxInlineLen
	}
	if l.MaxCommandLen <= 0 {
		l.MaxCommandLen = d.MaxCommandLen
	}
	return l
}

// ProtocolError is returned for malformed input. Its Error() is exactly
// Redis's text, so the server can reply "-ERR " + err.Error() and close.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return e.Msg }

// Redis's texts, from networking.c. Redis has no dedicated text for a bulk
// whose payload is not followed by CRLF (it skips two bytes blindly) nor for
// a command exceeding MaxCommandLen; both are reported as an invalid bulk
// length, since in both cases a declared bulk length cannot be honoured.
const (
	msgTooBigInline    = "Protocol error: too big inline request"
	msgUnbalanced      = "Protocol error: unbalanced quotes in request"
	msgTooBigMbulk     = "Protocol error: too big mbulk count string"
	msgInvalidMbulk    = "Protocol error: invalid multibulk length"
	msgTooBigBulkCount = "Protocol error: too big bulk count string"
	msgInvalidBulk     = "Protocol error: invalid bulk length"
)

func protoErr(msg string) error { return &ProtocolError{Msg: msg} }

// TooLargeError is returned for a command with an argument over
// MaxBulkLen but within what the reader discards (maxDiscardBulk): the
// whole command was read and dropped, nothing of it kept, and the
// connection is in step for the next command, so the server answers an
// error and goes on, where a larger one is a ProtocolError that closes
// it. Not sticky.
type TooLargeError struct {
	Len, Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("argument of %d bytes exceeds the maximum allowed size (%d bytes); the command was not run", e.Len, e.Limit)
}

// maxDiscardBulk is the longest argument the reader drops rather than
// refuses (Redis's proto-max-bulk-len), and maxDiscard the most one
// command may make it drop: past them the connection is closed. Dropping
// costs no memory, only the client's own bandwidth.
const (
	maxDiscardBulk = 512 << 20
	maxDiscard     = 1 << 30
)

func expectedDollar(got byte) error {
	// Built from bytes, not runes, so a non-ASCII byte is echoed as the single
	// byte Redis's %c would print.
	b := append([]byte("Protocol error: expected '$', got '"), got, '\'')
	return &ProtocolError{Msg: string(b)}
}

const (
	// defaultBufSize matches Redis's PROTO_IOBUF_LEN: big enough that a
	// typical pipelined batch arrives in one read.
	defaultBufSize = 16 << 10
	// A 1M-argument command must not leave 24 MiB of slice headers attached
	// to the connection afterwards.
	maxKeptArgs = 4096
	// An io.Reader returning (0, nil) forever would otherwise spin.
	maxEmptyReads = 100
)

// Reader parses client commands: RESP arrays of bulk strings, and inline
// commands split with Redis's quoting rules.
//
// The whole of a command is kept contiguous in one buffer and nothing is
// consumed until it has been parsed completely. Argument positions are
// recorded relative to the command's start, so the buffer may be compacted
// or regrown mid-command, and an I/O error (a read deadline, say) leaves the
// reader able to resume by reparsing from the command's start.
type Reader struct {
	rd   io.Reader
	lim  Limits
	size int // initial buffer size, returned to after an oversized command
	buf  []byte
	r, w int // buf[r:w] is unconsumed input; r is where the current command starts

	offs []int // start/end pairs of the current command's arguments, relative to r
	args [][]byte

	err error // sticky protocol error
	// An oversized command being dropped (TooLargeError): bytes of the
	// current bulk left to drop, bulks after it, the total dropped, and
	// the error to return once done.
	drop     int64
	dropCRLF bool // the dropped bulk's CRLF is still to be checked
	dropBulk int
	dropped  int64
	tooLarge *TooLargeError
	rerr     error // error that arrived together with data, reported on the next fill
	noRead   bool  // set by TryReadCommand: fill must not touch the underlying reader
}

// errWouldBlock stops a TryReadCommand parse that needs more input; nothing
// has been consumed when it is returned.
var errWouldBlock = errors.New("resp: command not fully buffered")

// NewReader returns a Reader parsing commands from r under lim.
func NewReader(r io.Reader, lim Limits) *Reader {
	return newReaderSize(r, lim, defaultBufSize)
}

// newReaderSize lets tests use a tiny buffer, so that compaction and growth
// happen on almost every command.
func newReaderSize(r io.Reader, lim Limits, size int) *Reader {
	return &Reader{rd: r, lim: lim.withDefaults(), size: size, buf: make([]byte, size)}
}

// Buffered reports how many bytes are already buffered, so the caller can
// tell whether another pipelined command may be read without blocking. A
// positive count can still be only part of a command.
func (r *Reader) Buffered() int { return r.w - r.r }

// ReadCommand returns the next command's arguments. The returned slices are
// only valid until the next call: they point into the reader's buffer, which
// is reused. Empty commands (*0, *-1, blank inline lines) are skipped, as
// Redis skips them. io.EOF is returned only at a clean boundary between
// commands; a stream ending mid-command gives io.ErrUnexpectedEOF.
func (r *Reader) ReadCommand() ([][]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	r.release()
	if r.tooLarge != nil {
		return nil, r.dropRest()
	}
	for {
		if r.r == r.w {
			r.r, r.w = 0, 0
			if err := r.fill(0); err != nil {
				return nil, err // io.EOF here is a clean boundary
			}
		}
		var end, n int
		var err error
		if r.buf[r.r] == '*' {
			end, n, err = r.parseMultibulk()
		} else {
			end, n, err = r.parseInline()
		}
		if err != nil {
			if d, ok := err.(*dropFrom); ok {
				// Oversized: drop the command from its big bulk on.
				r.r += d.at
				r.drop, r.dropCRLF, r.dropBulk, r.dropped = d.bulk, true, d.after, d.bulk+2
				r.tooLarge = &TooLargeError{Len: d.bulk, Limit: int64(r.lim.MaxBulkLen)}
				return nil, r.dropRest()
			}
			if _, ok := err.(*ProtocolError); ok {
				r.err = err
			} else if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if n == 0 {
			// *0, *-N and blank inline lines are no-ops in Redis too.
			r.r += end
			continue
		}
		base := r.buf[r.r:]
		args := r.args[:0]
		for i := 0; i < len(r.offs); i += 2 {
			s, e := r.offs[i], r.offs[i+1]
			// Capacity is clipped so a caller appending to an argument
			// reallocates instead of overwriting the next one.
			args = append(args, base[s:e:e])
		}
		r.args = args
		r.r += end
		return args, nil
	}
}

// TryReadCommand is ReadCommand without blocking: it returns the next
// command only if all of it is already buffered, and ok=false otherwise,
// without calling the underlying reader. Buffered() > 0 says bytes are
// waiting, not that they form a whole command; a server gathering a
// pipelined batch uses TryReadCommand so that a batch whose tail was split
// across TCP segments does not hold back the replies to the commands before
// it. The arguments follow ReadCommand's rules.
func (r *Reader) TryReadCommand() (args [][]byte, ok bool, err error) {
	r.noRead = true
	args, err = r.ReadCommand()
	r.noRead = false
	switch {
	case err == errWouldBlock:
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return args, true, nil
}

// release drops memory a previous oversized command left behind, so an idle
// connection does not pin megabytes. It runs before parsing, when the
// previous call's arguments are no longer valid.
func (r *Reader) release() {
	if cap(r.args) > maxKeptArgs || cap(r.offs) > 2*maxKeptArgs {
		r.args, r.offs = nil, nil
	}
	if len(r.buf) > 4*r.size && r.w-r.r <= r.size {
		if r.lim.Buffer != nil {
			_ = r.lim.Buffer(r.size) // shrinking is never refused
		}
		nb := make([]byte, r.size)
		r.w = copy(nb, r.buf[r.r:r.w])
		r.r = 0
		r.buf = nb
	}
}

// view is the buffered part of the current command and whatever follows it.
// It must be re-taken after every fill, which may move the buffer.
func (r *Reader) view() []byte { return r.buf[r.r:r.w] }

// fill reads more input, first making room by compacting or growing the
// buffer. The buffer grows only when the current command fills it, and at
// most doubles, so its size is bounded by twice what has actually arrived: a
// declared length alone never causes an allocation. want, if positive, is
// how many bytes of the current command are known to be needed, and caps the
// growth so a large bulk does not overshoot by up to 2x.
func (r *Reader) fill(want int) error {
	if r.noRead {
		return errWouldBlock
	}
	if r.rerr != nil {
		err := r.rerr
		r.rerr = nil
		return err
	}
	if r.r > 0 || r.w == len(r.buf) {
		used := r.w - r.r
		size := len(r.buf)
		if used == size {
			// Full of the current command: only now may it grow.
			size *= 2
			if want > used {
				size = min(size, want)
			}
		}
		if size != len(r.buf) {
			if r.lim.Buffer != nil {
				if err := r.lim.Buffer(size); err != nil {
					return err
				}
			}
			nb := make([]byte, size)
			copy(nb, r.buf[r.r:r.w])
			r.buf = nb
		} else {
			// Moving the partial command to the front is cheap (it is what
			// did not fit in the last read) and gives the next read the
			// whole buffer.
			copy(r.buf, r.buf[r.r:r.w])
		}
		r.r, r.w = 0, used
	}
	for range maxEmptyReads {
		n, err := r.rd.Read(r.buf[r.w:])
		if n < 0 || n > len(r.buf)-r.w {
			return errors.New("resp: reader returned invalid count")
		}
		r.w += n
		if n > 0 {
			r.rerr = err
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// need fills until at least n bytes of the current command are buffered.
func (r *Reader) need(n int) error {
	for r.w-r.r < n {
		if err := r.fill(n); err != nil {
			return err
		}
	}
	return nil
}

// scan returns the offset, relative to the command start, of the first c at
// or after off. More than limit bytes before it is a tooBig error. The limit
// is checked against what has arrived before asking for more, so the outcome
// does not depend on how the input was split into reads, and rescanning
// starts where the last scan stopped so a line trickling in byte by byte
// costs linear time.
func (r *Reader) scan(off int, c byte, limit int, tooBig string) (int, error) {
	from := off
	for {
		b := r.view()
		if i := bytes.IndexByte(b[from:], c); i >= 0 {
			if from+i-off > limit {
				return 0, protoErr(tooBig)
			}
			return from + i, nil
		}
		from = len(b)
		if from-off > limit {
			return 0, protoErr(tooBig)
		}
		if err := r.fill(0); err != nil {
			return 0, err
		}
	}
}

// header reads a "*N\r\n" or "$N\r\n" line at off. It returns the offset of
// its CR, once the byte after it has arrived, as Redis waits for that too.
func (r *Reader) header(off int, tooBig string) (int, error) {
	cr, err := r.scan(off, '\r', r.lim.MaxInlineLen, tooBig)
	if err != nil {
		return 0, err
	}
	return cr, r.need(cr + 2)
}

// parseMultibulk parses the RESP array starting the view. It returns the
// command's length in bytes and its argument count (0 for a skipped empty
// command).
func (r *Reader) parseMultibulk() (end, nargs int, err error) {
	cr, err := r.header(0, msgTooBigMbulk)
	if err != nil {
		return 0, 0, err
	}
	b := r.view()
	count, ok := parseInt(b[1:cr])
	if !ok || b[cr+1] != '\n' || count > int64(r.lim.MaxArrayLen) {
		return 0, 0, protoErr(msgInvalidMbulk)
	}
	off := cr + 2
	if count <= 0 {
		return off, 0, nil
	}
	r.offs = r.offs[:0]
	total := int64(0)
	for range count {
		n, next, err := r.bulkHeader(off)
		if err != nil {
			return 0, 0, err
		}
		if n > int64(r.lim.MaxBulkLen) && n <= maxDiscardBulk {
			return 0, 0, &dropFrom{at: next, bulk: n, after: int(count) - len(r.offs)/2 - 1}
		}
		if n > int64(r.lim.MaxBulkLen) || total+n > int64(r.lim.MaxCommandLen) {
			return 0, 0, protoErr(msgInvalidBulk)
		}
		total += n
		off = next
		if err := r.need(off + int(n) + 2); err != nil {
			return 0, 0, err
		}
		b := r.view()
		if b[off+int(n)] != '\r' || b[off+int(n)+1] != '\n' {
			return 0, 0, protoErr(msgInvalidBulk)
		}
		r.offs = append(r.offs, off, off+int(n))
		off += int(n) + 2
	}
	return off, int(count), nil
}

// dropFrom says where the current command's oversized bulk begins
// (relative to the command's start), its length, and how many bulks
// follow it.
type dropFrom struct {
	at    int
	bulk  int64
	after int
}

func (*dropFrom) Error() string { return "resp: oversized argument" }

// dropRest drops the rest of an oversized command, reading as it goes
// (the buffer never grows for it), then returns its TooLargeError. It
// keeps its place across calls: a TryReadCommand that would block leaves
// it to the next read.
func (r *Reader) dropRest() error {
	for r.drop > 0 || r.dropCRLF || r.dropBulk > 0 {
		if r.drop == 0 && r.dropCRLF {
			// A payload ends with CRLF, dropped or not: a wrong length
			// must not set the next command's start.
			if err := r.need(2); err != nil {
				return r.dropFailed(err)
			}
			if r.buf[r.r] != '\r' || r.buf[r.r+1] != '\n' {
				return r.dropFailed(protoErr(msgInvalidBulk))
			}
			r.r += 2
			r.dropCRLF = false
			continue
		}
		if r.drop > 0 {
			take := min(int64(r.w-r.r), r.drop)
			r.r += int(take)
			r.drop -= take
			if r.drop > 0 {
				r.r, r.w = 0, 0
				if err := r.fill(0); err != nil {
					return r.dropFailed(err)
				}
			}
			continue
		}
		if r.r == r.w {
			r.r, r.w = 0, 0
			if err := r.fill(0); err != nil {
				return r.dropFailed(err)
			}
		}
		n, next, err := r.bulkHeader(0)
		if err != nil {
			return r.dropFailed(err)
		}
		if n > maxDiscardBulk || r.dropped+n+2 > maxDiscard {
			return r.dropFailed(protoErr(msgInvalidBulk))
		}
		r.r += next
		r.drop, r.dropCRLF, r.dropped = n, true, r.dropped+n+2
		r.dropBulk--
	}
	err := r.tooLarge
	r.tooLarge = nil
	return err
}

// dropFailed reports why a drop cannot go on now. A protocol error ends
// it and sticks; any other error (a read that would block, a deadline,
// the end of input, which comes mid-command) leaves the drop where it
// is, to resume at the next read, as a partly read command would.
func (r *Reader) dropFailed(err error) error {
	if _, ok := err.(*ProtocolError); ok {
		r.err = err
		r.tooLarge = nil
		return err
	}
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// InCommand reports whether a command is partly read: bytes are buffered,
// or an oversized command is being dropped (Buffered may then be 0). A
// server waiting for the rest should apply its read timeout, not its
// idle one.
func (r *Reader) InCommand() bool { return r.w > r.r || r.tooLarge != nil }

// bulkHeader parses the "$N\r\n" at off, returning N (not yet checked
// against the limits) and the offset of the payload.
func (r *Reader) bulkHeader(off int) (n int64, next int, err error) {
	// Fast path for the common case, a short well-formed length already
	// buffered; anything else takes the general path below, which gives the
	// same result for these inputs.
	b := r.view()
	if i := off + 1; i < len(b) && b[off] == '$' && b[i] >= '1' && b[i] <= '9' {
		for ; i < len(b) && i-off <= 18 && b[i] >= '0' && b[i] <= '9'; i++ {
			n = n*10 + int64(b[i]-'0')
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' && i-off <= r.lim.MaxInlineLen {
			return n, i + 2, nil
		}
	}
	cr, err := r.header(off, msgTooBigBulkCount)
	if err != nil {
		return 0, 0, err
	}
	b = r.view()
	if b[off] != '$' {
		return 0, 0, expectedDollar(b[off])
	}
	n, ok := parseInt(b[off+1 : cr])
	if !ok || b[cr+1] != '\n' || n < 0 {
		return 0, 0, protoErr(msgInvalidBulk)
	}
	return n, cr + 2, nil
}

// parseInline parses the inline command line starting the view, splitting it
// in place: unquoting only ever shrinks a token, and the line is consumed
// with the command.
func (r *Reader) parseInline() (end, nargs int, err error) {
	// One extra byte of allowance for the CR of a CRLF terminator.
	nl, err := r.scan(0, '\n', r.lim.MaxInlineLen+1, msgTooBigInline)
	if err != nil {
		return 0, 0, err
	}
	b := r.view()
	lineEnd := nl
	if nl > 0 && b[nl-1] == '\r' {
		lineEnd--
	}
	if lineEnd > r.lim.MaxInlineLen {
		return 0, 0, protoErr(msgTooBigInline)
	}
	line := b[:lineEnd]
	// Redis splits the line as a C string: a NUL ends it.
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	offs, ok := splitInline(line, r.offs[:0])
	r.offs = offs
	if !ok {
		return 0, 0, protoErr(msgUnbalanced)
	}
	nargs = len(offs) / 2
	if nargs > r.lim.MaxArrayLen {
		return 0, 0, protoErr(msgTooBigInline)
	}
	total := 0
	for i := 0; i < len(offs); i += 2 {
		n := offs[i+1] - offs[i]
		if n > r.lim.MaxBulkLen {
			return 0, 0, protoErr(msgTooBigInline)
		}
		total += n
	}
	if total > r.lim.MaxCommandLen {
		return 0, 0, protoErr(msgTooBigInline)
	}
	return nl + 1, nargs, nil
}

// parseInt is Redis's string2ll: optional '-', no '+', no leading zeros, no
// spaces, at most 20 characters, and within int64.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) >= 21 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := false
	if b[0] == '-' {
		neg = true
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (^uint64(0)-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true
	}
	if v > 1<<63-1 {
		return 0, false
	}
	return int64(v), true
}
