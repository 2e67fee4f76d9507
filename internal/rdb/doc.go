// Package rdb encodes and decodes the payloads of Redis's DUMP and
// RESTORE, so keys can move between Redis and Kintsu in either
// direction. It is a pure codec: bytes in, a Value out, and back; the
// commands, keys and expiry times belong to its callers.
//
// A payload (Redis 7.0, src/cluster.c createDumpPayload) is one RDB
// object type byte, the value serialized as in an RDB file (src/rdb.c
// rdbSaveObject), the RDB version in 2 bytes and a CRC64 of everything
// before it in 8, both little endian. Parse reads every encoding a Redis
// up to 7.2 writes for strings, lists, sets, sorted sets and hashes,
// from the raw forms to listpacks, ziplists, intsets and zipmaps; Dump
// writes the plain forms, which Redis 7.0 and later load and re-encode
// by their own configuration. Streams and module values are refused with
// ErrUnsupportedType.
//
// A payload comes from the network, so Parse holds to these invariants:
//
//   - It never panics and never reads outside the payload, whatever the
//     bytes: every length is checked against what is left before it is
//     used, and every compact encoding is walked with each header
//     bounds-checked (FuzzParse exercises this).
//   - It allocates only what the payload justifies, and at most the
//     budget given to ParseLimit (DefaultMaxBytes for Parse). A declared
//     count or length the remaining bytes cannot hold fails before
//     anything is sized by it, so a length of 2^60 costs nothing. An
//     LZF-compressed string may claim at most 88 times its compressed
//     size (the most LZF can expand, see lzfMaxRatio) and at most
//     MaxStringBytes, and its output is charged to the budget before it
//     is allocated, as is every copy and element slot. Each string
//     decodes into a buffer of its declared length and must fill it
//     exactly. The budget is what bounds the rest: compressed listpacks
//     of one-byte integers let a 35 KB payload describe 1.5 million
//     elements, which is legitimate (Redis's own DUMP of a long list
//     of small numbers looks like that) but costs far more than 35 KB
//     to hold.
//   - Nesting is fixed, not recursive: a value holds strings, and a
//     string holds at most one compact encoding (a quicklist node, a
//     listpack...) of plain entries, so depth is bounded by the format.
//   - It refuses what RESTORE refuses ("Bad data format"): duplicate set
//     members, hash fields or sorted-set members, NaN scores, empty
//     collections, unknown types and encodings; and it checks compact
//     encodings as deeply as Redis does with sanitize-dump-payload yes.
//     It is stricter where Redis is lax about what its own DUMP never
//     writes: bytes between the value and the footer, a value that reads
//     on into the footer, a score that is not entirely a number (or is
//     NaN) inside a listpack, and bytes after a zipmap's terminator
//     (TestRedisRefusesHostilePayloads lists each against redis-server).
//   - The returned Value shares no memory with the payload.
package rdb
