package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/plaithq/plait"
)

// Progress reports how far a view rebuild (Rebuild) or the replay of an
// aggregate type (Replay) has come.
type Progress struct {
	Type      string // the view or aggregate type
	Phase     string // "replaying", "swapping" or "done"
	Position  int64  // the last log position replayed
	Head      int64  // the log's head when this report was made
	Events    int64  // events replayed
	Instances int    // instances of the copy so far
	Elapsed   time.Duration
	// Replaying is the part of Elapsed spent reading the log and applying
	// it to the copy; the rest goes to writing the copy, swapping it in
	// and dropping the old one. Set by view rebuilds.
	Replaying time.Duration
	// Paused is how long the world was stopped to swap the copies.
	Paused time.Duration
}

// ErrRebuilding means a rebuild or replay of the type is under way
// already: a type's state is rebuilt once at a time.
var ErrRebuilding = errors.New("engine: the type is being rebuilt or replayed already")

// rebuildPage is how many events a rebuild reads at a time.
const rebuildPage = 2000

// Rebuild rebuilds the view type typ from the event log into a fresh copy
// while the old copy keeps serving, then swaps them. It runs every reactor
// over the log and applies only the commands for the view, so side effects
// outside the view are suppressed. To swap, it waits for the reactors to
// finish their current page (and the retry of any page one failed to
// finish) and the partitions their current batch, catches
// the copy up to exactly where each reactor stands, replaces the view's
// instances in one transaction and lets everything go on; reads never stop.
// Scaled out, where the world cannot stop, the copy is the view's commands
// that have an outcome, and the store swaps it behind a fence that fails
// the commits decided on the replaced records (see rebuild_scaled.go).
// progress, if not nil, is called as the rebuild goes. Run must be running.
func (e *Engine) Rebuild(ctx context.Context, typ string, progress func(Progress)) (Progress, error) {
	def, ok := e.defs[typ]
	if !ok || !def.Settings().View {
		return Progress{}, fmt.Errorf("%w: %q is not a view of %s", plait.ErrNotFound, typ, e.app.Name)
	}
	select {
	case <-e.ready:
	default:
		return Progress{}, plait.ErrStopped
	}
	if !e.startRebuild(typ) {
		return Progress{}, fmt.Errorf("rebuild %s: %w", typ, ErrRebuilding)
	}
	defer e.endRebuild(typ)
	if e.scaled() {
		// Stopping the world would need every instance's partitions.
		return e.rebuildScaled(ctx, def, progress)
	}
	rb := &rebuild{e: e, def: def, shadow: map[string]*shadowInst{}, dirty: map[string]bool{},
		reporter: newReporter(e, Progress{Type: typ, Phase: "replaying"}, progress)}
	if err := e.swapIn(ctx, def, rb); err != nil {
		return rb.p, fmt.Errorf("rebuild %s: %w", typ, err)
	}
	e.log.Info("view rebuilt", "view", typ, "events", rb.p.Events, "instances", rb.p.Instances,
		"elapsed", rb.p.Elapsed.Round(time.Millisecond).String(), "paused", rb.p.Paused.Round(time.Millisecond).String())
	return rb.p, nil
}

// startRebuild marks typ as being rebuilt or replayed, unless it is
// already: a type's copy is staged once at a time, and staging drops
// every other copy of it (see store/sqlite's dropAbandoned).
func (e *Engine) startRebuild(typ string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rebuilding[typ] {
		return false
	}
	e.rebuilding[typ] = true
	return true
}

// endRebuild ends what startRebuild began.
func (e *Engine) endRebuild(typ string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.rebuilding, typ)
}

// stopReactors takes the reactors' gate once none is in the middle of a
// page it failed to finish: its committed commands are past its
// checkpoint, where a rebuild's replay stops, and its retry would find
// them done and leave them out of the copy.
func (e *Engine) stopReactors(ctx context.Context) error {
	for {
		e.reactorGate.Lock()
		stuck := ""
		for _, r := range e.reactors {
			if r.midPage.Load() {
				stuck = r.reactor.Name()
			}
		}
		if stuck == "" {
			return nil
		}
		e.reactorGate.Unlock()
		select {
		case <-time.After(20 * time.Millisecond):
		case <-e.stopped:
			return plait.ErrStopped
		case <-ctx.Done():
			return fmt.Errorf("reactor %s is retrying a page it failed to finish: %w", stuck, ctx.Err())
		}
	}
}

// slowestReactor returns the lowest reactor checkpoint: every event up to
// it has had its effects.
func (e *Engine) slowestReactor() int64 {
	if len(e.reactors) == 0 {
		return 0
	}
	low := e.reactors[0].pos.Load()
	for _, r := range e.reactors[1:] {
		low = min(low, r.pos.Load())
	}
	return low
}

type rebuild struct {
	e          *Engine
	def        plait.Definition
	shadow     map[string]*shadowInst
	dirty      map[string]bool // instances changed since last written to a staged copy
	subscribed []string        // the keys of the events the reactors subscribe to
	reporter
}

// reactUpTo applies the view's commands for the events after the current
// position up to target. With bounds, a reactor's commands count only for
// events up to its bound. Where the store can, only the events some
// reactor subscribes to are read. The next page is read while the current
// one is applied, so reading and decoding the log overlaps the reactors and
// the view's decide.
func (rb *rebuild) reactUpTo(ctx context.Context, target int64, bounds map[*plait.Reactor]int64) error {
	if rb.p.Position >= target {
		return nil
	}
	defer func(start time.Time) { rb.p.Replaying += time.Since(start) }(time.Now())
	_, canFilter := rb.e.store.(FilteredEvents)
	pending := rb.fetch(ctx, rb.p.Position, target)
	for pending != nil {
		pg := <-pending
		pending = nil
		if pg.err != nil {
			return fmt.Errorf("read events: %w", pg.err)
		}
		evs := pg.events
		if len(evs) == 0 {
			if canFilter { // nothing more up to target
				rb.p.Position = target
			}
			return nil
		}
		if last := evs[len(evs)-1].Position; len(evs) == rebuildPage && last < target {
			pending = rb.fetch(ctx, last, target)
		}
		for _, ev := range evs {
			if ev.Position > target {
				return nil
			}
			rb.feed(ev, bounds)
			rb.p.Position = ev.Position
			rb.p.Events++
		}
		if canFilter && len(evs) < rebuildPage {
			rb.p.Position = target
		}
		rb.report(false)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// page is one page of the log read by fetch.
type page struct {
	events []plait.Event
	err    error
}

// fetch reads, in the background, the page of events after after, up to
// target where the store can filter.
func (rb *rebuild) fetch(ctx context.Context, after, target int64) <-chan page {
	keys := rb.keys()
	out := make(chan page, 1)
	go func() {
		var pg page
		if filtered, ok := rb.e.store.(FilteredEvents); ok {
			pg.events, pg.err = filtered.ReadEventsOf(ctx, after, target, keys, rebuildPage)
		} else {
			pg.events, pg.err = rb.e.store.ReadEvents(ctx, after, rebuildPage)
		}
		out <- pg
	}()
	return out
}

// keys are the "type.name" keys of every event some reactor subscribes to.
func (rb *rebuild) keys() []string {
	if rb.subscribed == nil {
		seen := map[string]bool{}
		for _, r := range rb.e.reactors {
			for _, k := range r.reactor.Subscriptions() {
				if !seen[k] {
					seen[k] = true
					rb.subscribed = append(rb.subscribed, k)
				}
			}
		}
		sort.Strings(rb.subscribed)
	}
	return rb.subscribed
}

// feed runs every reactor subscribed to ev and applies its commands for the
// view.
func (rb *rebuild) feed(ev plait.Event, bounds map[*plait.Reactor]int64) {
	view := rb.def.Type()
	for _, r := range rb.e.reactors {
		if !r.reactor.Subscribes(ev.Type, ev.Name) {
			continue
		}
		if bound, ok := bounds[r.reactor]; ok && ev.Position > bound {
			continue
		}
		cmds, err := safeReact(r.reactor, ev)
		if err != nil {
			continue // skipped live too: see react
		}
		for _, cmd := range cmds {
			if cmd.Type == view && plait.CheckOf(rb.def, cmd) == nil {
				rb.apply(cmd)
			}
		}
	}
}

// shadowInst is one instance of the copy. Where the definition can hold
// states decoded, held has the current state and inst.State is filled in
// only when the instance is written.
type shadowInst struct {
	inst Instance
	held plait.Held
}

// apply decides one view command against the copy, as the live engine would.
func (rb *rebuild) apply(cmd plait.Command) {
	sh, ok := rb.shadow[cmd.AggregateID]
	if !ok {
		sh = &shadowInst{inst: Instance{Type: cmd.Type, ID: cmd.AggregateID}}
		if h, ok := rb.def.(plait.Holder); ok {
			if held, err := h.Hold(nil); err == nil {
				sh.held = held
			}
		}
		rb.shadow[cmd.AggregateID] = sh
	}
	if sh.held == nil {
		if p := decide(rb.def, sh.inst, cmd); p.Instance != nil {
			sh.inst = *p.Instance
			rb.dirty[cmd.AggregateID] = true
		}
		return
	}
	// The same steps as decide, on the held state.
	inst := &sh.inst
	if cmd.ExpectedSeq != nil && *cmd.ExpectedSeq != inst.Seq {
		return
	}
	changes, err := heldDecide(sh.held, plait.Current{Seq: inst.Seq, Lineage: inst.Lineage}, cmd)
	if err != nil || len(changes) == 0 || sh.held.Apply(changes) != nil {
		return
	}
	if inst.Seq == 0 && inst.Owner == "" {
		inst.Owner = cmd.User // the owner is whoever sent the first command
	}
	inst.Seq += int64(len(changes))
	inst.UpdatedAt = cmd.At
	for _, c := range changes {
		if len(c.Lineage) > 0 && inst.Lineage == nil {
			inst.Lineage = map[string]plait.Lineage{}
		}
		maps.Copy(inst.Lineage, c.Lineage)
	}
	rb.dirty[cmd.AggregateID] = true
}

func heldDecide(h plait.Held, current plait.Current, cmd plait.Command) (changes []plait.Change, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s.%s panicked: %v", errInternal, cmd.Type, cmd.Name, r)
		}
	}()
	return h.Decide(current, cmd)
}

// instance returns the instance of the copy with its state encoded.
func (sh *shadowInst) instance() (Instance, error) {
	if sh.held != nil {
		st, err := sh.held.Encode()
		if err != nil {
			return Instance{}, fmt.Errorf("encode %s/%s: %w", sh.inst.Type, sh.inst.ID, err)
		}
		sh.inst.State = st
	}
	return sh.inst, nil
}

// catchUp replays while the world goes on, until close to where the
// slowest reactor is.
func (rb *rebuild) catchUp(ctx context.Context) error {
	for {
		target := rb.e.slowestReactor()
		if target-rb.p.Position < rebuildPage {
			return nil
		}
		if err := rb.reactUpTo(ctx, target, nil); err != nil {
			return err
		}
	}
}

// writeDirty writes the instances changed since the last write to the copy.
func (rb *rebuild) writeDirty(ctx context.Context, c ViewCopy) error {
	return writeDirty(ctx, c, rb.dirty, rb.record)
}

func (rb *rebuild) changed() int { return len(rb.dirty) }

// stopWorld stops the reactors (see stopReactors) and then the partitions.
func (rb *rebuild) stopWorld(ctx context.Context) error {
	if err := rb.e.stopReactors(ctx); err != nil {
		return err
	}
	rb.e.partitionGate.Lock()
	return nil
}

// finish, the world stopped, replays each reactor's commands up to where
// that reactor stands.
func (rb *rebuild) finish(ctx context.Context) error {
	bounds := map[*plait.Reactor]int64{}
	target := int64(0)
	for _, r := range rb.e.reactors {
		bounds[r.reactor] = r.pos.Load()
		target = max(target, r.pos.Load())
	}
	return rb.reactUpTo(ctx, target, bounds)
}

func (rb *rebuild) reporting() *reporter { return &rb.reporter }

func (rb *rebuild) record(id string) (Instance, error) {
	in, err := rb.shadow[id].instance()
	in.Owner = rb.def.Settings().Access.Owner(in.State, in.Owner)
	return in, err
}

func (rb *rebuild) report(force bool) { rb.emit(force, len(rb.shadow)) }
