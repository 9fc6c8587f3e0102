package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plaithq/plait"
)

// Replay rebuilds the materialized state of every instance of aggregate
// type typ by folding its events from the log (through the upcasters), into
// a fresh copy while the old one keeps serving, then swaps them, as a view
// rebuild does: it folds while the world goes on, stops the partitions
// just long enough to fold what they committed meanwhile, and makes the
// copy live at once. It works for any type, views included (a view is then
// folded from its own events, not replayed through the reactors). progress,
// if not nil, is called as it goes; its Type is the type. Run must be
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
		reporter: newReporter(e, Progress{Type: typ, Phase: "replaying"}, progress)}
	if err := e.swapIn(ctx, def, rp); err != nil {
		return rp.p, fmt.Errorf("replay %s: %w", typ, err)
	}
	e.log.Info("aggregate type replayed", "type", typ, "events", rp.p.Events, "instances", rp.p.Instances,
		"elapsed", rp.p.Elapsed.Round(time.Millisecond).String(), "paused", rp.p.Paused.Round(time.Millisecond).String())
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
	in.Owner = r.f.def.Settings().Access.Owner(state, in.Owner)
	return in, nil
}

// writeDirty writes the instances changed since the last write to the copy.
func (rp *replay) writeDirty(ctx context.Context, c ViewCopy) error {
	return writeDirty(ctx, c, rp.dirty, rp.record)
}

func (rp *replay) changed() int { return len(rp.dirty) }

// catchUp folds while the world goes on, until close to the log's head.
func (rp *replay) catchUp(ctx context.Context) error {
	for {
		target := rp.e.Head()
		if target-rp.p.Position < rebuildPage {
			return nil
		}
		if err := rp.fold(ctx, target); err != nil {
			return err
		}
	}
}

// stopWorld stops the reactors and the partitions.
func (rp *replay) stopWorld(context.Context) error {
	rp.e.reactorGate.Lock()
	rp.e.partitionGate.Lock()
	return nil
}

// finish, the world stopped, folds up to the store's head: once the
// partition gate is held, every batch decided is committed.
func (rp *replay) finish(ctx context.Context) error {
	head, err := rp.e.store.Head(ctx)
	if err != nil {
		return err
	}
	return rp.fold(ctx, head)
}

func (rp *replay) reporting() *reporter { return &rp.reporter }

func (rp *replay) record(id string) (Instance, error) { return rp.shadow[id].record() }

func (rp *replay) report(force bool) { rp.emit(force, len(rp.shadow)) }
