// Package failure names what became of a request that did not get its
// reply: the typed errors that routing and the transaction coordinator
// return, and that the RESP edge alone turns into Redis's error replies
// (edge/errors.go). Each says whether the request may have taken effect,
// which is what a client, a retry loop and the transaction coordinator act
// on; no one decides that by reading reply text.
//
// Invariants:
//   - Every error here is either NotApplied (certainly no effect: a retry
//     is safe) or may have applied (Uncertain): Applied never guesses.
//   - The package is a leaf with no reply texts: wording is the edge's.
//   - A ReplyBudget travels in a request's context from the edge to the
//     reads it bounds (budget.go); a read it leaves unrun is ErrNotRun,
//     which never reaches a client.
package failure
