package ring

import "strconv"

// SlotCount is the number of hash slots, fixed by Redis Cluster so that
// cluster-aware clients compute the same slot for a key as we do.
const SlotCount = 16384

// crcTable is the byte-at-a-time table for CRC16-CCITT (XMODEM): polynomial
// 0x1021, initial value 0, no reflection, no final XOR. It is written once
// while the package initialises and only read afterwards.
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

func crc16(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>8)^x]
	}
	return c
}

// Slot returns the hash slot of key exactly as Redis Cluster computes it, so
// that a key lands on the same slot here as in any cluster-aware client.
//
// Hash tags: if key contains '{' and a later '}' with at least one byte
// between them, only the bytes between the first '{' and the first '}' after
// it are hashed. "{user1}.a" and "{user1}.b" therefore share a slot, while
// "foo{}{bar}" hashes the whole key (the first tag is empty).
func Slot(key []byte) uint16 {
	for s, c := range key {
		if c != '{' {
			continue
		}
		for e := s + 1; e < len(key); e++ {
			if key[e] == '}' {
				if e > s+1 {
					key = key[s+1 : e]
				}
				break
			}
		}
		break
	}
	return crc16(key) & (SlotCount - 1)
}

// PartitionOf returns the partition that owns slot. Partitions own equal,
// contiguous slot ranges, so a partition's slots are one arc of the ring.
// partitions must be valid (see Config.Validate) and slot < SlotCount.
func PartitionOf(slot uint16, partitions int) int {
	return int(slot) / (SlotCount / partitions)
}

// SlotRange returns the inclusive slot range [start, end] that partition
// owns out of partitions. partitions must be valid (see Config.Validate) and
// 0 <= partition < partitions.
func SlotRange(partition, partitions int) (start, end uint16) {
	width := SlotCount / partitions
	return uint16(partition * width), uint16((partition+1)*width - 1)
}

// SpreadKeys names n keys, prefix followed by a number, each in a partition
// none of the others is in while there are partitions left (n > partitions
// starts over). Workloads and tests use it to make operations span
// partitions for certain.
func SpreadKeys(prefix string, n, partitions int) []string {
	var out []string
	used := map[int]bool{}
	for i := 0; len(out) < n; i++ {
		if len(used) == partitions {
			used = map[int]bool{}
		}
		k := prefix + strconv.Itoa(i)
		if p := PartitionOf(Slot([]byte(k)), partitions); !used[p] {
			used[p] = true
			out = append(out, k)
		}
	}
	return out
}
