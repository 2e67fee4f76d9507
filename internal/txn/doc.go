// Package txn runs transactions over partitions: MULTI/EXEC, WATCH, and
// multi-key commands whose keys live in different partitions. It is pure:
// the state machine (Apply, Read) works on a partition's Store inside a
// log entry's apply, and the coordinator and resolver reach partitions
// only through the Cluster interface, so every step of the protocol can be
// run, crashed and replayed in memory (see TestEveryCrashPoint).
//
// # Protocol
//
// A transaction whose keys (watched keys included) all live in one
// partition is one log entry, txn.exec1: checked and applied at once
// (one-phase commit).
//
// Otherwise the coordinator (the node that received EXEC) runs two-phase
// commit. The record lives in the partition of the first key.
//
//  1. PREPARE the record's partition: in one entry, lock its keys, check
//     its watches, evaluate its commands without changing user data
//     (their effects become intents in the partition's part table), and
//     create the record PENDING, listing every participant.
//  2. PREPARE every other participant, in parallel, the same way.
//  3. If every PREPARE succeeded, COMMIT: the record moves PENDING ->
//     COMMITTED by compare-and-set. That entry is the decision. The client
//     is answered from the replies PREPARE computed.
//  4. Resolve every part (COMMITTED applies the intents, else drops them,
//     and releases the locks), then delete the record.
//
// Conflicts follow wound-wait, by priority (the first attempt's start
// time): an older transaction aborts ("wounds") the younger ones in its
// way and prepares that participant again; a younger one waits for older
// ones. The waiting is done by the participant's leader (WaitQueue, run by
// the router): a PREPARE that met only older holders is parked there,
// keeping the locks its transaction holds elsewhere, and proposed again
// when they are resolved, the oldest waiter of a key first. Every wait
// points to an older transaction, so there is no deadlock, and the oldest
// always progresses (no starvation). When the wait runs out (a second, or
// the request's deadline), or no queue served it, the PREPARE fails: the
// attempt aborts its record, releases what it holds and retries after a
// randomized backoff with the same priority. Attempts are bounded
// (Config.MaxAttempts).
//
// A read-only transaction over several partitions (a cross-partition
// MGET, a MULTI of reads) first tries without locks (Config.OptimisticReads
// attempts): it reads every share with its keys' versions and the holders
// of write locks on them (txn.snap, a read: no log entry), reads them all
// again, and accepts when no version moved and every holder it met is
// still undecided or aborted; then every value was current at once at any
// moment between the two rounds, and the reader is ordered before the
// undecided holders, so it neither waits for writers nor makes them wait
// (Coordinator.readOptimistic has the argument). When writers keep
// changing its keys it falls back to shared locks like any transaction.
//
// Locks are exclusive for keys a transaction writes and shared for keys
// it only reads or watches. Plain commands meet them too: a plain write
// is refused while any transaction holds the key, a plain read while one
// writes it; the node then resolves the lock (Resolver.Push) and retries,
// within the request's deadline.
//
// # Recovery
//
// Anyone who meets a lock reads its record: COMMITTED -> apply, ABORTED
// or missing -> drop, PENDING -> wait, unless its heartbeat has not moved
// for Config.Expiry on the observer's own clock; then it aborts the record
// by compare-and-set on that heartbeat value and drops. Each partition
// leader's sweeper does the same for old parts, and finishes old decided
// records (and expired pending ones) of its partition.
//
// # Invariants
//
//   - A record's status changes only PENDING -> COMMITTED (by its
//     coordinator, after every PREPARE succeeded) or PENDING -> ABORTED.
//   - A part is created only after its record exists (in the same entry on
//     the record's partition, strictly after on the others), so a lock
//     whose record is missing belongs to a transaction that can no longer
//     commit.
//   - A record is deleted only after every part it lists is resolved.
//   - Between a key's PREPARE and its resolution no other transaction and
//     no plain command changes it, and no plain read reads it while it is
//     written: the locks make every transaction serializable (strict
//     two-phase locking), and the COMMIT entry its linearization point.
//     A lock-free read-only transaction is linearized between its two
//     rounds of reads.
//   - A client is told a transaction applied only after its COMMIT is
//     replicated; "nothing was applied" only if no COMMIT was sent or the
//     record was seen ABORTED; otherwise the reply says the outcome is
//     unknown.
//   - A restarted coordinator has a new origin and no memory: it never
//     resumes an old attempt, whose record expires and is aborted.
//
// # WATCH
//
// Every stored value carries the log index of its last write (its
// version). WATCH reads the version; PREPARE (or exec1) compares it. A key
// absent at WATCH and absent again at EXEC counts as unchanged even if it
// existed in between: the transaction still sees exactly the state it
// commits on, so it remains serializable.
package txn
