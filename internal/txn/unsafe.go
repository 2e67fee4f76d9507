package txn

import "sync/atomic"

// readsIgnoreWriters is a DELIBERATE BUG, planted only by
// PlantReadsIgnoreIntents (kintsu chaos --plant-bug skip-intent-check):
// reads no longer wait for a writer's lock, so a reader can see one
// partition after a transaction's intents were applied and another before,
// half of a transaction. It is process-wide because the check runs where
// the log is applied, on every replica alike.
var readsIgnoreWriters atomic.Bool

// PlantReadsIgnoreIntents turns the planted bug on for this process.
// Testing only: it exists to prove the chaos suite's bank check can fail.
func PlantReadsIgnoreIntents() { readsIgnoreWriters.Store(true) }
