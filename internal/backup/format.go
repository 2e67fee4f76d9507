package backup

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// FormatVersion is the version of the partition files and the manifest.
const FormatVersion = 1

const magic = "KINTSUBK"

const headerBytes = len(magic) + 2 + 4 + 8

// Tables a record may belong to.
const (
	TableData    byte = 'd'
	TableLocks   byte = 'l'
	TableParts   byte = 'p'
	TableRecords byte = 'r'
	// TableSub holds collections' sub-keys (hash fields, ...): the key is
	// the user key's length (4 bytes), the user key, the collection's
	// version (8 bytes) and the sub-key (SplitSub).
	TableSub   byte = 's'
	trailerTag byte = 'E'
)

// Limits on one record, matching what the cluster accepts: a key is at
// most one RESP argument, a stored value one value with its type and
// expiry, a transaction table entry at most one transaction's commands.
const (
	MaxKeyBytes      = 16 << 20
	MaxValueBytes    = 16<<20 + 64
	MaxTxnValueBytes = 65 << 20
)

// ErrCorrupt marks a file that is not a well-formed partition file.
var ErrCorrupt = errors.New("corrupt backup data")

// Header opens a partition file.
type Header struct {
	Partition int
	Index     uint64 // the raft index of the partition's cut
}

// Counts closes a partition file.
type Counts struct {
	Records int64
	Keys    int64 // records of user data
}

// Writer encodes one partition file onto w.
type Writer struct {
	w      *bufio.Writer
	counts Counts
	buf    []byte
}

// NewWriter writes h and returns a writer for the records.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	b := append([]byte(magic), 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(b[len(magic):], FormatVersion)
	binary.BigEndian.PutUint32(b[len(magic)+2:], uint32(h.Partition))
	b = binary.BigEndian.AppendUint64(b, h.Index)
	_, err := bw.Write(b)
	return &Writer{w: bw}, err
}

// Add writes one record.
func (w *Writer) Add(table byte, k, v []byte) error {
	if err := checkRecord(table, len(k), len(v)); err != nil {
		return err
	}
	w.buf = AppendRecord(w.buf[:0], table, k, v)
	if _, err := w.w.Write(w.buf); err != nil {
		return err
	}
	w.counts.Records++
	if table == TableData {
		w.counts.Keys++
	}
	return nil
}

// Close writes the trailer and flushes; it does not close the underlying
// writer.
func (w *Writer) Close() (Counts, error) {
	b := []byte{trailerTag}
	b = binary.BigEndian.AppendUint64(b, uint64(w.counts.Records))
	b = binary.BigEndian.AppendUint64(b, uint64(w.counts.Keys))
	if _, err := w.w.Write(b); err != nil {
		return w.counts, err
	}
	return w.counts, w.w.Flush()
}

// AppendRecord appends one record's encoding to b.
func AppendRecord(b []byte, table byte, k, v []byte) []byte {
	b = append(b, table)
	b = binary.AppendUvarint(b, uint64(len(k)))
	b = append(b, k...)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// SplitSub parses the key of a TableSub record: the user key, the
// collection's version and the sub-key; ok=false if it is malformed.
func SplitSub(k []byte) (key []byte, ver uint64, sub []byte, ok bool) {
	if len(k) < 4 {
		return nil, 0, nil, false
	}
	n := uint64(binary.BigEndian.Uint32(k))
	if n == 0 || uint64(len(k)-4) < n+8 {
		return nil, 0, nil, false
	}
	return k[4 : 4+n], binary.BigEndian.Uint64(k[4+n:]), k[4+n+8:], true
}

func checkRecord(table byte, klen, vlen int) error {
	limit := MaxTxnValueBytes
	switch table {
	case TableData:
		limit = MaxValueBytes
		if klen == 0 {
			return fmt.Errorf("%w: empty user key", ErrCorrupt)
		}
	case TableSub:
		limit = MaxValueBytes
		if klen > MaxKeyBytes*2+20 || vlen > limit { // length, key, version, field hash, field
			return fmt.Errorf("%w: record of %d+%d bytes exceeds the limits", ErrCorrupt, klen, vlen)
		}
		return nil
	case TableLocks, TableParts, TableRecords:
	default:
		return fmt.Errorf("%w: unknown table %q", ErrCorrupt, table)
	}
	if klen > MaxKeyBytes || vlen > limit {
		return fmt.Errorf("%w: record of %d+%d bytes exceeds the limits", ErrCorrupt, klen, vlen)
	}
	return nil
}

// Reader decodes one partition file.
type Reader struct {
	r      *bufio.Reader
	h      Header
	counts Counts
	done   bool
	k, v   []byte
}

// NewReader reads and checks the header.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	b := make([]byte, headerBytes)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, eofIsCorrupt(err))
	}
	if string(b[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: not a Kintsu partition file", ErrCorrupt)
	}
	if v := binary.BigEndian.Uint16(b[len(magic):]); v != FormatVersion {
		return nil, fmt.Errorf("%w: format version %d, this Kintsu reads %d", ErrCorrupt, v, FormatVersion)
	}
	h := Header{Partition: int(binary.BigEndian.Uint32(b[len(magic)+2:])), Index: binary.BigEndian.Uint64(b[len(magic)+6:])}
	return &Reader{r: br, h: h}, nil
}

// Header is the file's header.
func (r *Reader) Header() Header { return r.h }

// Next returns the next record; io.EOF after a valid trailer, which must
// end the input. The slices are valid until the next call.
func (r *Reader) Next() (table byte, k, v []byte, err error) {
	if r.done {
		return 0, nil, nil, io.EOF
	}
	table, err = r.r.ReadByte()
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: no trailer (cut short after %d records)", ErrCorrupt, r.counts.Records)
	}
	if table == trailerTag {
		return 0, nil, nil, r.trailer()
	}
	klen, err := binary.ReadUvarint(r.r)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, r.counts.Records, eofIsCorrupt(err))
	}
	if err := checkRecord(table, int(min(klen, MaxKeyBytes+1)), 0); err != nil {
		return 0, nil, nil, fmt.Errorf("record %d: %w", r.counts.Records, err)
	}
	if r.k, err = readN(r.r, r.k, klen); err != nil {
		return 0, nil, nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, r.counts.Records, err)
	}
	vlen, err := binary.ReadUvarint(r.r)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, r.counts.Records, eofIsCorrupt(err))
	}
	if err := checkRecord(table, int(klen), int(min(vlen, MaxTxnValueBytes+1))); err != nil {
		return 0, nil, nil, fmt.Errorf("record %d: %w", r.counts.Records, err)
	}
	if r.v, err = readN(r.r, r.v, vlen); err != nil {
		return 0, nil, nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, r.counts.Records, err)
	}
	r.counts.Records++
	if table == TableData {
		r.counts.Keys++
	}
	return table, r.k, r.v, nil
}

func (r *Reader) trailer() error {
	b := make([]byte, 16)
	if _, err := io.ReadFull(r.r, b); err != nil {
		return fmt.Errorf("%w: trailer: %v", ErrCorrupt, eofIsCorrupt(err))
	}
	got := Counts{Records: int64(binary.BigEndian.Uint64(b)), Keys: int64(binary.BigEndian.Uint64(b[8:]))}
	if got != r.counts {
		return fmt.Errorf("%w: trailer counts %d records, %d keys; the file holds %d, %d", ErrCorrupt, got.Records, got.Keys, r.counts.Records, r.counts.Keys)
	}
	if _, err := r.r.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: data after the trailer", ErrCorrupt)
	}
	r.done = true
	return io.EOF
}

// Counts are the records read so far (all of them after io.EOF).
func (r *Reader) Counts() Counts { return r.counts }

func readN(r io.Reader, buf []byte, n uint64) ([]byte, error) {
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := io.ReadFull(r, buf)
	return buf, eofIsCorrupt(err)
}

func eofIsCorrupt(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// DecodeRecords calls fn for each record in b (a restore chunk: records
// without header or trailer), checking each against the limits.
func DecodeRecords(b []byte, fn func(table byte, k, v []byte) error) error {
	for len(b) > 0 {
		table := b[0]
		b = b[1:]
		k, rest, err := lenPrefixed(b)
		if err != nil {
			return err
		}
		v, rest, err := lenPrefixed(rest)
		if err != nil {
			return err
		}
		b = rest
		if err := checkRecord(table, len(k), len(v)); err != nil {
			return err
		}
		if err := fn(table, k, v); err != nil {
			return err
		}
	}
	return nil
}

func lenPrefixed(b []byte) (field, rest []byte, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, nil, fmt.Errorf("%w: truncated record", ErrCorrupt)
	}
	return b[w : w+int(n)], b[w+int(n):], nil
}
