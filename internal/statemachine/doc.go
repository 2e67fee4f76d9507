// Package statemachine is everything applied from the raft log, and the
// evaluation of reads against applied state: the data partitions' state
// machine (plain commands, transaction operations, backup cuts and
// restores) and the metadata group's (the node registry, partition
// records, liveness heartbeats, the ACL users).
//
// It is pure: it reads and writes a group's state only through Store,
// which the engine's apply batch (raftstore.Writer) satisfies, and it
// links no network and no storage engine, so it is tested on an in-memory
// Store.
//
// Invariants:
//   - Apply is deterministic: the same committed command on the same state
//     gives the same effects and the same reply on every replica (time
//     comes from the entry, through Store.NowMS). A malformed command, or a
//     record it cannot decode, answers an error reply alike everywhere;
//     only a storage failure is an error, and it stops the node.
//   - Each committed command is looked up once (Classify); Apply and Read
//     dispatch on the Spec, never on the name again.
//   - A plain data command that meets a transaction's lock changes nothing:
//     it calls Store.Refuse and answers the lock's holders, and the
//     proposer resolves them and retries.
//   - While a restore loads a partition, every write a client asked for
//     (plain writes, PREPARE, one-partition transactions) is refused with
//     LOADING; only the restore's own entries change the partition.
//   - ACL users change only by rules applied to the committed table
//     (acl.go), so concurrent changes from several nodes compose; the
//     table's version grows by one per change, and no password reaches
//     the log in plaintext.
//   - The registry is final: a removed node stays removed, and a node id
//     that ever heartbeated is never joined again (see the control plane's
//     membership invariants).
package statemachine
