package ring

import (
	"fmt"
	"testing"
)

func BenchmarkSlot(b *testing.B) {
	key := []byte("{user1000}.following")
	b.ReportAllocs()
	b.SetBytes(int64(len(key)))
	for b.Loop() {
		Slot(key)
	}
}

// BenchmarkPlace: N=10, P=64, R=3, V=64, without zones and with three.
func BenchmarkPlace(b *testing.B) {
	for _, zones := range []int{0, 3} {
		b.Run(fmt.Sprintf("zones=%d", zones), func(b *testing.B) {
			nodes := make([]Node, 10)
			for i := range nodes {
				nodes[i].ID = uint64(i + 1)
				if zones > 0 {
					nodes[i].Zone = fmt.Sprint("zone-", i%zones)
				}
			}
			cfg := Config{Partitions: 64, Replicas: 3, VNodes: 64, Epsilon: 0.25}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Place(cfg, nodes); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
