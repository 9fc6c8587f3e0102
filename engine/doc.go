// Package engine runs a Plait application: it routes each command to its
// aggregate instance, decides it with the application's pure decide and
// evolve functions, and commits the outcome, exactly one per command, to a
// store behind small interfaces.
//
// # Embedded
//
// New makes an engine over a Store (store/sqlite, or any store that passes
// engine/enginetest's contract suite). Commands are spread by aggregate id
// over single-writer partitions, like a Kafka topic's: one instance's
// commands run one at a time in order, different instances in parallel.
// A partition loads the instance (kept in a cache), checks the command's
// expectedSeq (plait.CheckExpectedSeq), decides, and hands the result to a
// group commit that writes the events, the instance's new record and the
// command's outcome (its dedup record) of many commands in one transaction
// and one fsync. Submit returns once the command is durable; Await, the
// relay (package relay) and WaitSettled follow its outcome and the
// reactions it causes.
//
// Reactors (plait.Reactor) subscribe to events and send commands, usually to
// view aggregates that a list reads; each has a checkpoint in the store, and
// its commands are deduplicated by ids derived from the events, so a
// restart sends nothing twice. Rebuild makes a fresh copy of a view from the
// log while the old copy serves, then swaps them; Replay refolds the
// records of an aggregate type from its events.
//
// # Scaled out
//
// The same decide and commit path runs over Kafka and PostgreSQL (packages
// log/kafka and store/postgres): commands are records of a topic keyed by
// aggregate id, partitions bound the parallelism, and a batch commits with
// its consumed offsets in one PostgreSQL transaction, so a crash or a
// rebalance decides nothing twice (CommandLog, OffsetCommitter, ViewFence).
//
// The engine knows no HTTP (see package httpapi) and no storage technology.
package engine
