// Package postgres is Plait's scaled-out store: the event log of record, the
// dedup records and outcomes, the materialized state and views (JSONB), the
// subscription checkpoints and the consumed Kafka offsets in PostgreSQL,
// through pgx. It implements engine.Store.
//
// # Transactions and positions
//
// Commit writes a batch in one transaction: every event, every command's
// dedup record and outcome, every new instance record and, with
// CommitWithOffsets, the consumed offsets; all or nothing. Positions come
// from a one-row counter updated inside that transaction: its row lock
// serialises committers, from every process sharing the schema, until they
// commit, so positions are dense (a rolled-back commit gives its positions
// back) and ordered by commit. A reader that sees position n committed has
// seen every position below it.
//
// Two writers that race on one aggregate instance (a partition moved to
// another process while the old owner still commits) cannot both win: the
// unique (type, aggregate_id, seq) of the events, the primary key of the
// commands and the seq check on the instance record fail the loser's whole
// transaction with an error wrapping ErrConflict.
//
// # Schema, migrations and sharing a database
//
// Every table lives in Options.Schema (default "public") and is named with
// Options.Prefix, so several applications, and parallel tests, share one
// database each in its own schema or under its own prefix. Open migrates the
// schema: a versioned table of migrations, applied under a transaction-level
// advisory lock taken with pg_try_advisory_xact_lock, so any number of
// processes may start at once and exactly one applies each migration.
//
// The tables are (with the prefix):
//
//	log_head           the one-row position counter
//	events             the event log of record: envelope columns, data and lineage as JSONB
//	commands           dedup record and outcome of every command: its envelope, its data as
//	                   JSON exactly as sent (a rejection gives it back), status, errors, first event
//	instances          materialized state of every aggregate instance (state and lineage as JSONB)
//	checkpoints        subscription positions
//	offsets            consumed Kafka offsets, by topic and partition
//	view_swaps         each rebuilt view's generation: the fence of its commits
//	subject_keys       each data subject's key for its personal fields
//	schema_migrations  the migrations applied
//
// # List queries
//
// List filters and sorts on coalesce(state->'field', 'null'::jsonb), the
// field as JSONB: numbers compare numerically, strings by the database's
// collation (byte order under C or C.UTF-8, as in the embedded store), and a
// missing field equals JSON null, which sorts first ascending. EnsureIndexes
// creates, concurrently, one partial expression index per field an aggregate
// type declares with plait.Indexed, on exactly that expression and the id.
//
// # Rebuilding a view
//
// StageView (engine.StagedViews) writes a view's rebuilt copy beside the
// live one, in the instances table under a type of its own that no read
// names ("orderList~…"), and Swap applies it to the live rows in one
// transaction, rewriting only the instances that changed. The live view
// keeps its type, so the processes sharing the schema need no news of the
// swap; readers never wait for it. One copy of a view is staged at a time
// (a lease), and the next one drops what a crashed process left.
//
// # Values PostgreSQL cannot hold
//
// JSONB refuses the \u0000 escape and unpaired UTF-16 surrogates, and text
// refuses NUL bytes and invalid UTF-8, all of which Go's encoding/json lets
// through. A command's data is kept as JSON text, which takes them; events
// and states are JSONB, so Commit checks the batch before it writes and
// refuses one whose events or states hold them with an error wrapping
// ErrUnstorable that names the command. JSONB also keeps a document's
// meaning, not its spelling: event data and states read back with keys
// reordered and spaces added. Times are kept to the microsecond, and Commit
// rounds the batch's times down to it, so the outcome the engine announces
// is the one stored.
package postgres
