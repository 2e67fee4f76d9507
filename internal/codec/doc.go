// Package codec is Kintsu's one binary encoding: unsigned varints, single
// bytes, fixed-length runs, length-prefixed byte strings and argument
// lists, appended by an Encoder and read back by a Decoder. The raft entry
// payload (raftstore), the calls forwarded between nodes (server), the
// transaction records, locks, parts and operation bodies (txn) and the
// transport's frames are all built from these pieces.
//
// Those encodings sit in raft logs and transaction tables on disk and
// cross nodes of different builds during a rolling upgrade, so they are
// frozen: byte for byte what older binaries wrote. A varint is
// encoding/binary's unsigned varint; a byte string is its length as a
// varint, then the bytes; an argument list is a count, then that many byte
// strings. The packages that use this one pin their formats with golden
// tests.
//
// Invariants:
//   - A Decoder never panics, whatever the input.
//   - A Decoder never makes its caller allocate more than the input's
//     length implies: Count, and the count behind Args, is at most the
//     number of bytes left (each item costs at least one byte).
//   - Errors are sticky: after the first malformed read, every read returns
//     its zero value and consumes nothing, so callers check once (Done or
//     Err). Acceptance is a function of the input alone, and it is exactly
//     what the older decoders accepted (varints with redundant continuation
//     bytes included): replicas applying one log entry must agree on it.
//   - Byte strings alias the input, their capacity capped at their length,
//     so appending to one cannot overwrite what follows it.
//   - Reading allocates nothing except the slice Args returns; appending
//     allocates only when the Encoder's slice grows.
package codec
