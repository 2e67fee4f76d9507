// Package command says what a command is, once: its name, arity, flags,
// key positions, category and how the replies of its shares merge when its
// keys span partitions (Spec), and what one command of a client is once
// decoded (Cmd).
//
// Every layer works from the Spec it is handed instead of looking the name
// up again: the RESP edge decodes a command once (Decode) and hands the
// Cmd to routing and to the transaction coordinator; the state machine
// looks a committed command up once (Lookup) and hands the Spec to the
// lock check and to evaluation. While the log carries the command's bytes,
// those two lookups are the minimum.
//
// Invariants:
//   - The registry is filled by the owners' init functions and never
//     changes after; Lookup is safe from any goroutine. A name is
//     registered once (Register panics on a second, a programming error).
//   - A Spec is never changed after Register; callers share it read-only.
//   - Decode checks the arity before it reads any argument past the name,
//     so no argument list, however malformed, can make a caller index out
//     of range; Cmd.Keys are within Args.
//   - Internal commands (written into the log by Kintsu itself) are never
//     decoded for a client: Decode answers them as unknown, and Specs
//     leaves them out, so COMMAND does not list them.
//
// The package is a leaf: it imports only the standard library. It holds no
// evaluation code and no reply texts; the owners of commands (kv, txn, the
// edge) attach their code through Spec.Impl, and the edge turns Decode's
// typed errors into Redis's replies.
package command
