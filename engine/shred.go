package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine/shred"
)

// Crypto-shredding (see package shred): the personal fields of a type are
// sealed when committed. Everything inside the engine — the log, the
// materialized state, the feed the reactors read, the views they write —
// holds tokens; the public reads open them. Forget destroys the subject's
// key: from then on every token of the subject, wherever it was copied,
// opens as erased.

// Keys store one AES-256 key per data subject; see shred.Keys.
type Keys = shred.Keys

// KeySet is a Keys that reads many subjects' keys at once; see
// shred.KeySet.
type KeySet = shred.KeySet

// Erased is what a sealed string reads as once its subject is forgotten;
// any other sealed value reads as null.
const Erased = shred.Erased

// shredder seals and opens the personal values of what the engine commits
// and reads: batches, outcomes, events, feed items and commands. A nil
// shredder (no personal fields) seals and opens nothing: its own methods
// leave everything as it is, and the engine checks for nil before it
// forgets, destroys or compares keys.
type shredder struct{ *shred.Shredder }

// newShredder returns nil when no type of the app has personal fields.
func newShredder(app plait.App, keys Keys) (*shredder, error) {
	sh, err := shred.New(app, keys)
	if err != nil || sh == nil {
		return nil, err
	}
	return &shredder{sh}, nil
}

// seal seals the personal fields of data, of instance id of type typ.
func (s *shredder) seal(ctx context.Context, typ, id string, data json.RawMessage) (json.RawMessage, error) {
	if s == nil {
		return data, nil
	}
	return s.Seal(ctx, typ, id, data)
}

// open opens every token in data.
func (s *shredder) open(ctx context.Context, data json.RawMessage) (json.RawMessage, error) {
	if s == nil {
		return data, nil
	}
	return s.Open(ctx, data)
}

// warnUndeclaredCopies logs, once per field, a top-level field of a view's
// new state that holds a sealed value its type does not declare with
// plait.PersonalCopies: lists would filter and sort on its ciphertext.
func (e *Engine) warnUndeclaredCopies(def plait.Definition, state json.RawMessage) {
	if !def.Settings().View || !bytes.Contains(state, []byte(shred.TokenPrefix)) {
		return
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(state, &fields) != nil {
		return
	}
	declared := def.Settings().PersonalCopies
	for f, v := range fields {
		if slices.Contains(declared, f) || !bytes.HasPrefix(v, []byte(`"`+shred.TokenPrefix)) {
			continue
		}
		if _, warned := e.copiesWarned.LoadOrStore(def.Type()+"."+f, true); !warned {
			e.log.Warn("a view field holds personal data sealed by another type without declaring it: lists may filter and sort it as ciphertext; declare it with plait.PersonalCopies",
				"type", def.Type(), "field", f)
		}
	}
}

// sealBatch seals the personal fields of a batch in place, before it is
// committed: each command's data, each event's data and each new state of
// a type with personal fields. A nil shredder (no personal fields) leaves
// the batch as it is.
func (s *shredder) sealBatch(ctx context.Context, batch []*Processed) error {
	if s == nil {
		return nil
	}
	for _, p := range batch {
		out := &p.Outcome
		var err error
		if out.Command.Data, err = s.seal(ctx, out.Command.Type, out.Command.AggregateID, out.Command.Data); err != nil {
			return err
		}
		for i := range out.Events {
			ev := &out.Events[i]
			if ev.Data, err = s.seal(ctx, ev.Type, ev.AggregateID, ev.Data); err != nil {
				return err
			}
		}
		if in := p.Instance; in != nil {
			sealed, err := s.seal(ctx, in.Type, in.ID, in.State)
			if err != nil {
				return err
			}
			// The record is shared with the partition's cache, which keeps
			// the plain state for decide: replace it, do not write into it.
			copied := *in
			copied.State = sealed
			p.Instance = &copied
		}
	}
	return nil
}

// openOutcome opens the tokens of an outcome's command and events.
func (s *shredder) openOutcome(ctx context.Context, out plait.Outcome) (plait.Outcome, error) {
	if s == nil {
		return out, nil
	}
	var err error
	if out.Command.Data, err = s.open(ctx, out.Command.Data); err != nil {
		return out, err
	}
	out.Events, err = s.openEvents(ctx, out.Events)
	return out, err
}

// openEvents opens the tokens of events, into a new slice when any has one.
func (s *shredder) openEvents(ctx context.Context, evs []plait.Event) ([]plait.Event, error) {
	if s == nil {
		return evs, nil
	}
	var copied []plait.Event
	for i := range evs {
		data, err := s.open(ctx, evs[i].Data)
		if err != nil {
			return nil, err
		}
		if copied == nil && !bytes.Equal(data, evs[i].Data) {
			copied = append([]plait.Event(nil), evs...)
		}
		if copied != nil {
			copied[i].Data = data
		}
	}
	if copied == nil {
		return evs, nil
	}
	return copied, nil
}

// openItems opens the tokens of feed items, copying those it changes: the
// items may be the engine's memory of the feed.
func (s *shredder) openItems(ctx context.Context, items []Item) ([]Item, error) {
	out := items
	copied := false
	for i, it := range items {
		switch {
		case it.Event != nil:
			data, err := s.open(ctx, it.Event.Data)
			if err != nil {
				return nil, err
			}
			if bytes.Equal(data, it.Event.Data) {
				continue
			}
			ev := *it.Event
			ev.Data = data
			it.Event = &ev
		case it.Outcome != nil:
			o, err := s.openOutcome(ctx, *it.Outcome)
			if err != nil {
				return nil, err
			}
			it.Outcome = &o
		default:
			continue
		}
		if !copied {
			out = append([]Item(nil), items...)
			copied = true
		}
		out[i] = it
	}
	return out, nil
}

// sealingLog seals the personal fields of commands on their way into an
// external command log, so that the log's records (Kafka topics, say) hold
// no personal value in the clear. The engine opens them when it decides
// them (openCommands, in handleLogBatch).
type sealingLog struct {
	CommandLog
	sh *shredder
}

// Append seals cmd's personal fields and appends it.
func (l sealingLog) Append(ctx context.Context, cmd plait.Command, sender *plait.User) error {
	data, err := l.sh.seal(ctx, cmd.Type, cmd.AggregateID, cmd.Data)
	if err != nil {
		return err
	}
	cmd.Data = data
	return l.CommandLog.Append(ctx, cmd, sender)
}

// openCommands returns the commands with their personal fields opened, for
// decide, into a new slice: a field of a subject forgotten since the
// command was appended opens as erased.
func (s *shredder) openCommands(ctx context.Context, cmds []plait.Command) ([]plait.Command, error) {
	out := make([]plait.Command, len(cmds))
	for i, c := range cmds {
		if s.Personal(c.Type) {
			data, err := s.open(ctx, c.Data)
			if err != nil {
				return nil, err
			}
			c.Data = data
		}
		out[i] = c
	}
	return out, nil
}
