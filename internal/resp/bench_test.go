package resp

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

const batchSize = 16

func setBatch() []byte {
	value := bytes.Repeat([]byte("v"), 100)
	var b []byte
	for i := range batchSize {
		b = AppendCommand(b, []byte("SET"), fmt.Appendf(nil, "key:%03d", i), value)
	}
	return b
}

// One op is one batch of 16 pipelined SETs, as a client pipeline delivers
// them; ns/cmd is the per-command cost.
func BenchmarkReadCommandPipelined(b *testing.B) {
	batch := setBatch()
	r := NewReader(&loopReader{data: batch}, Limits{})
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		for range batchSize {
			if _, err := r.ReadCommand(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/cmd")
}

func BenchmarkReadCommandInline(b *testing.B) {
	line := []byte("SET key:001 \"hello world\"\r\n")
	r := NewReader(&loopReader{data: line}, Limits{})
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadCommand(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadCommandLargeBulk(b *testing.B) {
	cmd := AppendCommand(nil, []byte("SET"), []byte("k"), make([]byte, 1<<20))
	r := NewReader(&loopReader{data: cmd}, Limits{})
	b.SetBytes(int64(len(cmd)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadCommand(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendBulk(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 100)
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendBulk(buf[:0], value)
	}
}

func BenchmarkWriterReplies(b *testing.B) {
	w := NewWriter(io.Discard)
	var scratch []byte
	value := bytes.Repeat([]byte("v"), 100)
	b.ReportAllocs()
	for b.Loop() {
		for range batchSize {
			scratch = AppendBulk(scratch[:0], value)
			w.WriteRaw(scratch)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseValue(b *testing.B) {
	reply := AppendCommand(nil, []byte("SET"), []byte("key:001"), bytes.Repeat([]byte("v"), 100))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseValue(reply); err != nil {
			b.Fatal(err)
		}
	}
}

// The cost a RESP3 connection pays per reply (ToRESP3): a bulk string
// passes untouched, a plain array without nulls is scanned, one with a
// null copied, a shaped one (HGETALL's map) parsed and rebuilt.
func BenchmarkToRESP3(b *testing.B) {
	arr := AppendArrayHeader(nil, 10)
	for range 10 {
		arr = AppendBulkString(arr, "value-0123456789")
	}
	withNull := AppendArrayHeader(nil, 10)
	for i := range 10 {
		if i == 5 {
			withNull = AppendNull(withNull)
		} else {
			withNull = AppendBulkString(withNull, "value-0123456789")
		}
	}
	for _, c := range []struct {
		name  string
		reply []byte
		shape Shape
	}{
		{"bulk", AppendBulkString(nil, "value-0123456789"), ShapePlain},
		{"array", arr, ShapePlain},
		{"array-null", withNull, ShapePlain},
		{"map", arr, ShapeMap},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = ToRESP3(c.reply, c.shape)
			}
		})
	}
}
