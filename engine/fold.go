package engine

import (
	"context"
	"fmt"
	"maps"

	"github.com/plaithq/plait"
)

// Snapshots. Every instance's current state is materialized: each commit
// writes the instance's new record in the same transaction as its events,
// so the record is a snapshot taken at every event, at no extra write, and
// loading an instance reads one row whatever the length of its history.
// Snapshots are derived data: the log is the record. Fold computes an
// instance from the log, and Replay rebuilds every snapshot of a type from
// it — after a change to an evolve function or to the shape of an event
// (see plait.Version), or to check and repair the materialized state.
//
// There is no snapshot policy to configure: a snapshot at every event costs
// nothing the commit does not already write, and lists need the current
// state of every instance anyway.

// foldPage is how many of an instance's events Fold reads at a time.
const foldPage = 4096

// Fold returns the instance as its events make it: from the snapshot from
// (the zero Instance to fold the whole history), the instance's events
// after from.Seq are read from the log — upcast — and folded in. Loading an
// instance is Load; Fold(ctx, typ, id, loaded) folds what the log has past
// the snapshot, which is nothing once the engine has committed it. Like
// Load, it returns personal fields opened. evolve sees them sealed, as the
// reactors do: a type whose evolve reads a personal value (rather than
// copying it) is folded wrongly, and so is its replay.
func (e *Engine) Fold(ctx context.Context, typ, id string, from Instance) (Instance, error) {
	def, ok := e.defs[typ]
	if !ok {
		return from, fmt.Errorf("%w: no aggregate type %q", plait.ErrNotFound, typ)
	}
	inst := from
	inst.Type, inst.ID = typ, id
	f := newFolder(def)
	if err := f.start(inst.State); err != nil {
		return from, fmt.Errorf("fold %s/%s: %w", typ, id, err)
	}
	for {
		evs, err := e.store.Events(ctx, typ, id, inst.Seq, foldPage)
		if err != nil {
			return from, fmt.Errorf("fold %s/%s: read events: %w", typ, id, err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			if err := step(&inst, f, ev); err != nil {
				return from, fmt.Errorf("fold %s/%s: %w", typ, id, err)
			}
		}
	}
	state, err := f.encode()
	if err == nil {
		// Events carry personal fields sealed; like Load, Fold opens them.
		state, err = e.shred.open(ctx, state)
	}
	if err != nil {
		return from, fmt.Errorf("fold %s/%s: %w", typ, id, err)
	}
	inst.State = state
	inst.Owner = def.Settings().Access.Owner(state, inst.Owner)
	return inst, nil
}

// step folds one event into inst's record (all but the state, which f
// holds): seq, lineage, owner and time.
func step(inst *Instance, f *folder, ev plait.Event) error {
	if ev.Seq != inst.Seq+1 {
		return fmt.Errorf("event %s has seq %d after seq %d: the log has a gap", ev.ID, ev.Seq, inst.Seq)
	}
	if err := f.apply(ev); err != nil {
		return err
	}
	if inst.Seq == 0 && inst.Owner == "" {
		inst.Owner = ev.User // the owner is whoever sent the first command
	}
	inst.Seq = ev.Seq
	inst.UpdatedAt = ev.At
	if len(ev.Lineage) > 0 {
		if inst.Lineage == nil {
			inst.Lineage = map[string]plait.Lineage{}
		}
		maps.Copy(inst.Lineage, ev.Lineage)
	}
	return nil
}

// folder folds events into one state: held decoded when the definition can
// (plait.Holder), through Evolve on the encoded state otherwise.
type folder struct {
	def   plait.Definition
	held  plait.Held
	state []byte
}

func newFolder(def plait.Definition) *folder { return &folder{def: def} }

func (f *folder) start(state []byte) error {
	f.state = state
	if h, ok := f.def.(plait.Holder); ok {
		held, err := h.Hold(state)
		if err != nil {
			return err
		}
		f.held = held
	}
	return nil
}

func (f *folder) apply(ev plait.Event) error {
	if f.held != nil {
		if err := f.held.Apply([]plait.Change{{Name: ev.Name, Data: ev.Data}}); err != nil {
			return fmt.Errorf("evolve %s.%s of event %s: %w", ev.Type, ev.Name, ev.ID, err)
		}
		return nil
	}
	next, err := safeEvolve(f.def, f.state, ev.Name, ev.Data)
	if err != nil {
		return fmt.Errorf("evolve %s.%s of event %s: %w", ev.Type, ev.Name, ev.ID, err)
	}
	f.state = next
	return nil
}

func (f *folder) encode() ([]byte, error) {
	if f.held != nil {
		return f.held.Encode()
	}
	return f.state, nil
}
