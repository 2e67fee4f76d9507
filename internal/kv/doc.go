// Package kv evaluates Redis commands against a partition's state. It is
// pure: it reads and writes through the Reader and Writer interfaces and
// returns the RESP reply as bytes, so every replica that applies the same
// log entry computes the same effects and the same reply.
//
// Invariants:
//   - Evaluation is deterministic: it depends only on the command and the
//     state read through the interface, time included (Reader.NowMS: in a
//     log entry's apply, the time the leader stamped on the entry), with no
//     clock, no randomness, no maps iterated in random order.
//   - A key whose expiry time is at or before NowMS is absent to every
//     command; a write that meets it replaces or removes it.
//   - Arity is checked before any argument is indexed (command.Decode at
//     the edge, and Exec again on apply); eval functions may assume it.
//   - Each command is registered once, as a command.Spec whose Impl is its
//     *Command: whoever holds the Spec evaluates it without a second
//     lookup (Exec).
//   - Every stored value starts with a type tag; a command that meets a value
//     of the wrong type answers WRONGTYPE and changes nothing.
//   - No value grows past MaxValueBytes.
package kv
