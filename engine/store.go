package engine

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/plaithq/plait"
)

// Instance is the materialized record of one aggregate instance. Seq 0 means
// the instance does not exist yet.
type Instance struct {
	Type string
	ID   string
	Seq  int64 // the seq of its last event
	// State is the state its events evolve to, as JSON.
	State json.RawMessage
	// Lineage is, for a view, the source of each field.
	Lineage map[string]plait.Lineage
	// Owner is the user whose command made the instance: access rules
	// such as owner-only compare the reader with it.
	Owner string
	// UpdatedAt is the At of the command of its last event.
	UpdatedAt time.Time
}

// Processed is one command after decide: its outcome and, when accepted, its
// events and the instance's new record.
type Processed struct {
	Outcome  plait.Outcome
	Instance *Instance // nil when rejected
	// OwnerMoved is true when the command gave an existing instance
	// another owner (see plait.Access.OwnerField): a store that keeps an
	// instance's owner as it was when it writes a newer record writes
	// the new one then.
	OwnerMoved bool
	// FormerOwner is, when OwnerMoved, the owner the instance had before
	// the command: its events are theirs to see too (see Item).
	FormerOwner string
}

// ErrCorrupt marks a store's error that says its stored data is damaged (a
// malformed database file). The engine stops on it, as on a failed sync:
// commands it could not store would be answered "send it again" for ever,
// and the data needs its operator (a backup, a repair) before anything
// else is written over it.
var ErrCorrupt = errors.New("engine: the store's data is damaged")

// ErrOtherApplication marks a store that holds another application's
// data, which an application must not run on: its commands would be
// answered with another's outcomes, its lists mixed with another's
// instances of the same type names. A store opened for an application
// (their Options.Application) records the first that ran on it, and
// refuses another.
var ErrOtherApplication = errors.New("engine: another application's store")

// Log is the durable record the engine writes through. Implementations are
// safe for concurrent use.
type Log interface {
	// Commit records a batch of processed commands atomically and durably:
	// every command's dedup record and outcome, every event, every new
	// instance record, or none of them. It assigns increasing positions, in
	// batch order, to each command's events and then its outcome, writing them
	// into the batch. When Commit returns nil the batch survives a crash. An
	// error wrapping ErrCorrupt stops the engine.
	Commit(ctx context.Context, batch []*Processed) error
	// Load returns the instance's record, with Seq 0 if it does not exist.
	Load(ctx context.Context, typ, id string) (Instance, error)
	// Outcome returns the recorded outcome of command id; ok is false if the
	// command was never committed.
	Outcome(ctx context.Context, id string) (out plait.Outcome, ok bool, err error)
}

// Feed reads the log in position order.
type Feed interface {
	// ReadFeed returns up to limit items with positions after after, in
	// position order: each event, and each command's outcome after its events.
	ReadFeed(ctx context.Context, after int64, limit int) ([]Item, error)
	// Head returns the highest position committed, or given: positions
	// need not be dense (a restored embedded store's commits take positions
	// after the last one the store it replaced gave), so Head can be past
	// the last item, and readers pass over positions no item has.
	Head(ctx context.Context) (int64, error)
	// ReadEvents returns up to limit events with positions after after, in
	// position order, without the outcomes.
	ReadEvents(ctx context.Context, after int64, limit int) ([]plait.Event, error)
}

// Item is one entry of the feed: an event or an outcome.
type Item struct {
	Position int64
	Event    *plait.Event   // set for an event
	Outcome  *plait.Outcome // set for an outcome; its Events are not filled
	Owner    string         // the owner of the instance concerned
	// FormerOwner is, for an event of a command that gave its instance
	// another owner (plait.Access.OwnerField), the owner it had before:
	// the event that took the instance away is the last of it they see.
	FormerOwner string
}

// Checkpoints store how far each subscription has consumed the feed.
type Checkpoints interface {
	// Checkpoint returns the subscription's position, 0 if it has none.
	Checkpoint(ctx context.Context, name string) (int64, error)
	// SaveCheckpoint durably records the subscription's position. A
	// position behind the recorded one leaves it: a subscriber that lost
	// its turn (a publisher's lease) while it saved must not move the
	// checkpoint of the one that took over back.
	SaveCheckpoint(ctx context.Context, name string, pos int64) error
}

// Correlations answer what settling a correlation needs.
type Correlations interface {
	// LastEventOf returns the highest position of an event of the
	// correlation whose "type.name" key is in keys, 0 if none.
	LastEventOf(ctx context.Context, correlationID string, keys []string) (int64, error)
}

// Views replace a view's materialized state wholesale, for rebuilds.
type Views interface {
	// ReplaceView atomically replaces every instance of view type typ with
	// insts. An instance keeps the seq of the one it replaces, its last
	// event's in the log, so that its next event follows it with no gap
	// and no collision. One that replaces none (the rebuild's logic made
	// an item the live one never had) keeps its own: the log has none of
	// its events, and its next one is logged at the seq after it.
	ReplaceView(ctx context.Context, typ string, insts []Instance) error
}

// FilteredEvents is what a store offers to replay only the events that
// matter. A store without it is read in full with ReadEvents.
type FilteredEvents interface {
	// ReadEventsOf returns up to limit events with positions in
	// (after, upTo] whose "type.name" key is in keys, in position order.
	ReadEventsOf(ctx context.Context, after, upTo int64, keys []string, limit int) ([]plait.Event, error)
}

// StagedViews is what a store offers to rebuild a view with no pause that
// grows with the view: a copy written beside the live one while it serves,
// then made live at once. A store without it is rebuilt with ReplaceView.
type StagedViews interface {
	// StageView starts an empty copy of view typ, indexed as its
	// settings declare (Indexes, Searchable).
	StageView(ctx context.Context, typ string, settings plait.Settings) (ViewCopy, error)
}

// ViewCopy is a copy of a view being rebuilt.
type ViewCopy interface {
	// Write puts instances into the copy, replacing earlier writes of the
	// same ids; once swapped in, each takes its live one's seq.
	Write(ctx context.Context, insts []Instance) error
	// Swap makes the copy the live one, atomically, without stopping
	// reads of the view. SQLite's flips one row; PostgreSQL's, one
	// transaction that readers do not wait for, rewrites only the
	// instances that changed.
	Swap(ctx context.Context) error
	// Cleanup drops the copy that lost: the replaced one after Swap, this
	// one if Swap was never called.
	Cleanup(ctx context.Context) error
}

// Store is everything the engine needs of storage, and the queries it
// serves from it.
type Store interface {
	Log
	Feed
	Checkpoints
	Correlations
	Queries
	Views
}

// TypeCount is how many instances and events one aggregate type has, as a
// store counts them for inspection.
type TypeCount struct {
	Instances, Events int64
}
