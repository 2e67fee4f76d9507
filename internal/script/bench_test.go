package script

import (
	"testing"
	"time"
)

// BenchmarkServe is one run of a small script on a leader, VM setup and
// speculation included (the replication of its effects is not).
func BenchmarkServe(b *testing.B) {
	st := newStore()
	args := Args(Params{Partitions: testPartitions, Timeout: time.Second},
		Step{Body: []byte("return redis.call('incrby', KEYS[1], ARGV[1])"), Keys: bytesArgs([]string{k1}), Argv: bytesArgs([]string{"1"})})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Serve(st, args); err != nil {
			b.Fatal(err)
		}
	}
}
