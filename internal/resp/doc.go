// Package resp is Kintsu's RESP2 codec: it turns the bytes a Redis client
// sends into command arguments, and encodes the replies sent back.
//
// It sits on every request's path, so it does no I/O beyond the io.Reader and
// io.Writer it is handed, starts no goroutines and, in steady state, allocates
// nothing per command.
//
// Invariants the rest of the server relies on:
//
//   - Every size is bounded before memory is committed to it. Declared array
//     and bulk lengths are checked against [Limits] when their header is
//     parsed, and even an accepted length is never trusted: buffers grow only
//     as bytes actually arrive, so a client that announces 16 MB and sends
//     nothing costs the node a few kilobytes.
//   - The arguments returned by [Reader.ReadCommand] alias the reader's
//     buffer and stay valid only until the next call. That is what makes the
//     read path allocation-free; a caller that keeps an argument copies it.
//   - Malformed input yields a [*ProtocolError] whose text is exactly what
//     Redis replies in the same situation, so clients and tests written
//     against Redis see the same error, and the connection is then closed.
//     A protocol error is sticky; an I/O error is not, because nothing is
//     consumed until a whole command has been parsed.
//   - Parsing does not depend on how the stream is split into reads: the
//     same bytes give the same commands and the same error however they
//     arrive.
//   - Reply encoders never emit CR or LF inside a status or error line, so a
//     message built from user input cannot forge extra replies.
package resp
