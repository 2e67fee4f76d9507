package simfs

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// BenchmarkSync: a 4 KiB write and a Sync on a file that already holds
// size synced bytes, appended (a WAL, an sstable) or overwritten from the
// start (a recycled WAL). simfs's cost must not grow with size; Pebble's
// crashable MemFS copies the whole file on every Sync.
func BenchmarkSync(b *testing.B) {
	for _, mode := range []string{"append", "overwrite"} {
		for _, size := range []int{1 << 20, 16 << 20, 64 << 20} {
			for _, impl := range []string{"simfs", "memfs"} {
				b.Run(fmt.Sprintf("%s/%dMiB/%s", mode, size>>20, impl), func(b *testing.B) {
					var fs vfs.FS = New(0)
					if impl == "memfs" {
						fs = vfs.NewCrashableMem()
					}
					f, err := fs.Create("f", vfs.WriteCategoryUnspecified)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := f.Write(make([]byte, size)); err != nil {
						b.Fatal(err)
					}
					if err := f.Sync(); err != nil {
						b.Fatal(err)
					}
					buf := make([]byte, 4<<10)
					b.SetBytes(int64(len(buf)))
					b.ResetTimer()
					for i := 0; b.Loop(); i++ {
						if mode == "append" {
							_, err = f.Write(buf)
						} else {
							_, err = f.WriteAt(buf, int64(i*len(buf)%size))
						}
						if err != nil {
							b.Fatal(err)
						}
						if err := f.Sync(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
