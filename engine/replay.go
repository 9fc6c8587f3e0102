package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

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

// Replay rebuilds the materialized state of every instance of aggregate
// type typ by folding its events from the log (through the upcasters), into
// a fresh copy while the old one keeps serving, then swaps them, as a view
// rebuild does: it folds while the world goes on, stops the partitions
// just long enough to fold what they committed meanwhile, and makes the
// copy live at once. It works for any type, views included (a view is then
// folded from its own events, not replayed through the reactors). progress,
// if not nil, is called as it goes; its View is the type. Run must be
// running, in the embedded mode.
func (e *Engine) Replay(ctx context.Context, typ string, progress func(Progress)) (Progress, error) {
	def, ok := e.defs[typ]
	if !ok {
		return Progress{}, fmt.Errorf("%w: no aggregate type %q in %s", plait.ErrNotFound, typ, e.app.Name)
	}
	select {
	case <-e.ready:
	default:
		return Progress{}, plait.ErrStopped
	}
	if e.scaled() {
		return Progress{}, errors.New("engine: replay runs in the embedded mode only")
	}
	if !e.startRebuild(typ) {
		return Progress{}, fmt.Errorf("replay %s: %w", typ, ErrRebuilding)
	}
	defer e.endRebuild(typ)
	rp := &replay{e: e, def: def, shadow: map[string]*replayed{}, dirty: map[string]bool{}, keys: eventKeys(def),
		reporter: newReporter(e, Progress{View: typ, Phase: "replaying"}, progress)}
	catchUp := func() error {
		for {
			target := e.Head()
			if target-rp.p.Position < rebuildPage {
				return nil
			}
			if err := rp.fold(ctx, target); err != nil {
				return err
			}
		}
	}
	if err := catchUp(); err != nil {
		return rp.p, err
	}
	var staged ViewCopy
	if sv, ok := e.store.(StagedViews); ok {
		var err error
		if staged, err = sv.StageView(ctx, typ, def.Settings().Indexes); err != nil {
			return rp.p, fmt.Errorf("replay %s: %w", typ, err)
		}
		defer staged.Cleanup(context.WithoutCancel(ctx))
		for {
			if err := rp.writeDirty(ctx, staged); err != nil {
				return rp.p, fmt.Errorf("replay %s: %w", typ, err)
			}
			if err := catchUp(); err != nil {
				return rp.p, err
			}
			if len(rp.dirty) < rebuildPage {
				break
			}
		}
	}

	// Stop the world as a view rebuild does. Once the partition gate is
	// held, every batch decided is committed, so the store's head is
	// where the copy must reach.
	rp.p.Phase = "swapping"
	rp.report(true)
	paused := time.Now()
	e.reactorGate.Lock()
	e.partitionGate.Lock()
	head, err := e.store.Head(ctx)
	if err == nil {
		err = rp.fold(ctx, head)
	}
	switch {
	case err != nil:
	case staged != nil:
		if err = rp.writeDirty(ctx, staged); err == nil {
			err = staged.Swap(ctx)
		}
	default:
		var insts []Instance
		if insts, err = rp.instances(); err == nil {
			err = e.store.ReplaceView(ctx, typ, insts)
		}
	}
	if err == nil {
		e.cacheEpoch.Add(1)
	}
	e.partitionGate.Unlock()
	e.reactorGate.Unlock()
	rp.p.Paused = time.Since(paused)
	if err != nil {
		return rp.p, fmt.Errorf("replay %s: %w", typ, err)
	}
	rp.p.Phase = "done"
	rp.report(true)
	e.log.Info("aggregate type replayed", "type", typ, "events", rp.p.Events, "instances", rp.p.Instances,
		"elapsed", rp.p.Elapsed, "paused", rp.p.Paused)
	return rp.p, nil
}

// eventKeys are the "type.name" keys of the events of def.
func eventKeys(def plait.Definition) []string {
	v, ok := def.(interface{ Events() []string })
	if !ok {
		return nil // unknown: read every event and keep the type's
	}
	var keys []string
	for _, n := range v.Events() {
		keys = append(keys, def.Type()+"."+n)
	}
	return keys
}

type replay struct {
	e      *Engine
	def    plait.Definition
	keys   []string
	shadow map[string]*replayed
	dirty  map[string]bool
	reporter
}

// replayed is one instance of the copy: its record and its state, held.
type replayed struct {
	inst Instance
	f    *folder
}

// fold folds the type's events after the current position up to target.
func (rp *replay) fold(ctx context.Context, target int64) error {
	typ := rp.def.Type()
	filtered, canFilter := rp.e.store.(FilteredEvents)
	canFilter = canFilter && rp.keys != nil
	for rp.p.Position < target {
		var evs []plait.Event
		var err error
		if canFilter {
			evs, err = filtered.ReadEventsOf(ctx, rp.p.Position, target, rp.keys, rebuildPage)
		} else {
			evs, err = rp.e.store.ReadEvents(ctx, rp.p.Position, rebuildPage)
		}
		if err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		if len(evs) == 0 {
			if canFilter {
				rp.p.Position = target
			}
			return nil
		}
		for _, ev := range evs {
			if ev.Position > target {
				return nil
			}
			rp.p.Position = ev.Position
			if ev.Type != typ {
				continue
			}
			r, ok := rp.shadow[ev.AggregateID]
			if !ok {
				r = &replayed{inst: Instance{Type: typ, ID: ev.AggregateID}, f: newFolder(rp.def)}
				if err := r.f.start(nil); err != nil {
					return err
				}
				rp.shadow[ev.AggregateID] = r
			}
			if err := step(&r.inst, r.f, ev); err != nil {
				return fmt.Errorf("%s/%s: %w", typ, ev.AggregateID, err)
			}
			rp.dirty[ev.AggregateID] = true
			rp.p.Events++
		}
		rp.report(false)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// record returns the instance's record with its state encoded.
func (r *replayed) record() (Instance, error) {
	in := r.inst
	state, err := r.f.encode()
	if err != nil {
		return in, fmt.Errorf("encode %s/%s: %w", in.Type, in.ID, err)
	}
	in.State = state
	return in, nil
}

// writeDirty writes the instances changed since the last write to the copy.
func (rp *replay) writeDirty(ctx context.Context, c ViewCopy) error {
	return writeDirty(ctx, c, rp.dirty, rp.record)
}

// instances returns every instance of the copy.
func (rp *replay) instances() ([]Instance, error) {
	return records(sortedIDs(rp.shadow, func(*replayed) bool { return true }), rp.record)
}

func (rp *replay) record(id string) (Instance, error) { return rp.shadow[id].record() }

func (rp *replay) report(force bool) { rp.emit(force, len(rp.shadow)) }
