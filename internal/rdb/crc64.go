package rdb

import "sync"

// Redis checksums DUMP payloads with the "Jones" CRC-64 (src/crc64.c):
// polynomial 0xad93d23594c935a9, reflected input and output, initial
// value 0 and no final XOR. hash/crc64 cannot express it (it always
// inverts the register before and after), hence this table.
const crcPolyReflected = 0x95ac9329ac4bc9b5 // 0xad93d23594c935a9, bit-reversed

var (
	crcOnce  sync.Once
	crcTable [256]uint64
)

func crc64(crc uint64, p []byte) uint64 {
	crcOnce.Do(func() {
		for i := range crcTable {
			c := uint64(i)
			for range 8 {
				if c&1 == 1 {
					c = c>>1 ^ crcPolyReflected
				} else {
					c >>= 1
				}
			}
			crcTable[i] = c
		}
	})
	for _, b := range p {
		crc = crcTable[byte(crc)^b] ^ crc>>8
	}
	return crc
}
