// Package events keeps a node's recent events — the records it logs at
// Info and above: elections won, leadership moves, placement steps,
// membership changes, snapshots, decommissions, backups, warnings — for
// the web console and /v1/events, whatever the log level or format.
//
// Invariants: the recorder holds at most its capacity of events, each of
// bounded size (attributes are cut), so memory stays bounded however
// much is logged; recording never blocks on a reader, and readers get
// copies.
package events
