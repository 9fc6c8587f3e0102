// Package plait is the public API of Plait, a platform for event-driven,
// event-sourced applications.
//
// An application defines aggregate types with [NewAggregate]: for each command
// name a pure decide function that returns events or a rejection, and for each
// event name a pure evolve function that folds the event into the state.
// Reactors ([NewReactor]) turn events into commands for other aggregates, most
// often for view aggregates whose fields carry their [Lineage].
//
// Nothing in this package does I/O: the engine (package engine) loads state,
// calls decide and evolve, commits and relays; the storage adapters live in
// packages of their own.
package plait

import (
	"encoding/json"
	"strconv"
	"time"
)

// Command asks one aggregate instance to do something. ID is the idempotency
// key: the same ID submitted twice yields the first outcome again.
type Command struct {
	ID          string `json:"id"`
	Type        string `json:"type"`        // the aggregate type
	AggregateID string `json:"aggregateId"` // the instance's id
	Name        string `json:"name"`        // the command's name within its type
	// Data is the command's payload, decoded by its handler.
	Data json.RawMessage `json:"data"`
	// ExpectedSeq, when set, is the instance's seq the sender saw: if the
	// instance has moved on, the command is rejected with CodeConflict.
	ExpectedSeq *int64 `json:"expectedSeq,omitempty"`
	// CorrelationID ties the commands and events of one causal chain: a
	// command sent by a user is its own correlation (the engine sets it to
	// ID), and a reactor's command takes its event's.
	CorrelationID string `json:"correlationId"`
	// CausationID is the event that caused a reactor's command; empty for
	// a command a user sent.
	CausationID string `json:"causationId,omitempty"`
	// User is the id of the user who sent the command, set by the engine
	// from the sender it is submitted with.
	User string `json:"user"`
	// At is when the engine took the command, UTC to the microsecond: the
	// time decide sees, and every event of it carries.
	At time.Time `json:"at"`
	// typed is Data as the Go value a reactor's Send encoded, so that the
	// handler can take it without decoding Data again.
	typed typed
}

// Event is a fact recorded by one aggregate instance. Seq numbers the
// instance's events from 1 without gaps; Position orders all events and
// outcomes of a log.
type Event struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	AggregateID string `json:"aggregateId"`
	Seq         int64  `json:"seq"`
	Name        string `json:"name"`
	// Version is the version of the shape of Data, declared with
	// [Version]; 0 means 1, and version 1 is not written, so logs written
	// before versions existed read as version 1. Events are read at the
	// current version of their name: [Upcaster]s turn older ones into it.
	Version       int             `json:"version,omitempty"`
	Data          json.RawMessage `json:"data"`
	CorrelationID string          `json:"correlationId"` // the command's
	CausationID   string          `json:"causationId"`   // the command's ID
	User          string          `json:"user"`          // who sent the command
	At            time.Time       `json:"at"`            // the command's At
	// Position is the event's place in the log, set once it is recorded.
	Position int64 `json:"position,omitempty"`
	// Lineage is set on events of view aggregates: the source of each field
	// the event sets.
	Lineage map[string]Lineage `json:"lineage,omitempty"`
}

// Status is where a command stands.
type Status string

// The statuses of a command.
const (
	StatusPending  Status = "pending"
	StatusAccepted Status = "accepted"
	StatusRejected Status = "rejected"
)

// Outcome is what became of one command: its events, or its rejection.
// Every acknowledged command has exactly one.
type Outcome struct {
	Command Command      `json:"command"`
	Status  Status       `json:"status"`
	Events  []Event      `json:"events,omitempty"`
	Errors  []FieldError `json:"errors,omitempty"`
	// Position is the outcome's place in the log, after its events', set
	// once it is recorded.
	Position int64 `json:"position,omitempty"`
	// Owner is the user who owns the aggregate instance, for access checks.
	Owner string `json:"owner,omitempty"`
}

// typed is data as the Go value it was encoded from. It holds for the one
// data slice it was encoded to: data replaced by other bytes (sealed, say)
// no longer matches it, and is decoded as usual.
type typed struct {
	raw json.RawMessage
	v   any
}

// newTyped records that raw is the encoding of v.
func newTyped(raw json.RawMessage, v any) typed {
	if len(raw) == 0 {
		return typed{}
	}
	return typed{raw: raw, v: v}
}

// of returns the value if data is still the very slice it was encoded to.
func (t typed) of(data json.RawMessage) (any, bool) {
	if t.v == nil || len(data) == 0 || len(data) != len(t.raw) || &data[0] != &t.raw[0] {
		return nil, false
	}
	return t.v, true
}

// EventID is the id of the index-th (from 0) event caused by command id. It is
// deterministic, so an event published twice is recognised downstream.
func EventID(commandID string, index int) string {
	return commandID + "." + strconv.Itoa(index+1)
}
