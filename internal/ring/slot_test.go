package ring

import (
	"testing"
)

// crc16Bitwise is CRC16-XMODEM computed one bit at a time, straight from
// the definition, as the reference for the table-driven version.
func crc16Bitwise(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		for i := 7; i >= 0; i-- {
			in := uint16(x>>i) & 1
			top := c >> 15
			c <<= 1
			if top^in == 1 {
				c ^= 0x1021
			}
		}
	}
	return c
}

func TestSlotReference(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want uint16
	}{
		{"", 0},
		{"foo", 12182},
		{"bar", 5061},
		{"hello", 866},
		{"123456789", 0x31C3},
		{"{user1000}.following", Slot([]byte("user1000"))},
		{"foo{}{bar}", crc16([]byte("foo{}{bar}")) & (SlotCount - 1)},
		{"foo{{bar}}zap", Slot([]byte("{bar"))},
		{"foo{bar}{zap}", Slot([]byte("bar"))},
		{"{bar", Slot([]byte("{bar"))},
		{"}{", crc16([]byte("}{")) & (SlotCount - 1)},
	} {
		if got := Slot([]byte(tc.key)); got != tc.want {
			t.Errorf("Slot(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
	if got := crc16([]byte("123456789")); got != 0x31C3 {
		t.Errorf("crc16(123456789) = %#x, want 0x31c3 (the XMODEM check value)", got)
	}
	a, b := Slot([]byte("{user1000}.following")), Slot([]byte("{user1000}.followers"))
	if a != b {
		t.Errorf("hash tag: {user1000}.following -> %d, {user1000}.followers -> %d", a, b)
	}
	// The cases above partly compare Slot with itself; these literals are
	// what redis-server answers to CLUSTER KEYSLOT for the same keys.
	for key, want := range map[string]uint16{
		"foo{{bar}}zap":        4015,
		"foo{bar}{zap}":        5061,
		"foo{}{bar}":           8363,
		"{user1000}.following": 3443,
	} {
		if got := Slot([]byte(key)); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}

// TestSlotBitwise checks the table-driven CRC and the hash-tag rules against
// the bit-by-bit definition and a plain reading of the rules on random keys
// rich in braces.
func TestSlotBitwise(t *testing.T) {
	rng := newRand(t)
	alphabet := []byte("ab{}{}\x00\xff")
	for range iterations(20000) {
		key := make([]byte, rng.IntN(24))
		for i := range key {
			if rng.IntN(2) == 0 {
				key[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				key[i] = byte(rng.Uint32())
			}
		}
		hashed := key
		if s := indexByte(key, '{', 0); s >= 0 {
			if e := indexByte(key, '}', s+1); e > s+1 {
				hashed = key[s+1 : e]
			}
		}
		if got, want := Slot(key), crc16Bitwise(hashed)%SlotCount; got != want {
			t.Fatalf("Slot(%q) = %d, want %d", key, got, want)
		}
		if got, want := crc16(key), crc16Bitwise(key); got != want {
			t.Fatalf("crc16(%q) = %#x, want %#x", key, got, want)
		}
	}
}

func indexByte(b []byte, c byte, from int) int {
	for i := from; i < len(b); i++ {
		if b[i] == c {
			return i
		}
	}
	return -1
}

func TestSlotZeroAlloc(t *testing.T) {
	key := []byte("{user1000}.following")
	if n := testing.AllocsPerRun(100, func() { Slot(key) }); n != 0 {
		t.Errorf("Slot allocates %v times per call", n)
	}
}

func TestPartitionOfSlotRange(t *testing.T) {
	for partitions := 1; partitions <= SlotCount; partitions *= 2 {
		next := 0
		for p := range partitions {
			start, end := SlotRange(p, partitions)
			if int(start) != next || end < start {
				t.Fatalf("P=%d: partition %d owns [%d, %d], want a range starting at %d", partitions, p, start, end, next)
			}
			if int(end-start)+1 != SlotCount/partitions {
				t.Fatalf("P=%d: partition %d owns %d slots, want %d", partitions, p, end-start+1, SlotCount/partitions)
			}
			for _, s := range []uint16{start, end, start + (end-start)/2} {
				if got := PartitionOf(s, partitions); got != p {
					t.Fatalf("P=%d: PartitionOf(%d) = %d, want %d", partitions, s, got, p)
				}
			}
			next = int(end) + 1
		}
		if next != SlotCount {
			t.Fatalf("P=%d: ranges end at %d, want %d", partitions, next, SlotCount)
		}
	}
}

func TestSpreadKeys(t *testing.T) {
	keys := SpreadKeys("k", 12, 8)
	if len(keys) != 12 {
		t.Fatalf("%d keys", len(keys))
	}
	seen := map[int]bool{}
	for i, k := range keys {
		p := PartitionOf(Slot([]byte(k)), 8)
		if i < 8 && seen[p] || i >= 8 && !seen[p] {
			t.Fatalf("key %d (%s) in partition %d: the first 8 must be in distinct partitions", i, k, p)
		}
		seen[p] = true
	}
}
