package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/plaithq/plait"
)

// A scaled-out rebuild cannot stop the world: the view's commands are
// decided by whichever instances own their partitions, and its reactors
// run on every instance. It relies instead on what makes reactions
// exactly-once: reactors are pure and their commands' ids derived from the
// event. The copy is the view's commands that have an outcome, each decided
// against the copy in the order of the events that caused them:
//
//   - The source events are read from the store, the log of record, in
//     position order (through the upcasters, as the reactors get them), and
//     every reactor is run on them for the commands to the view.
//   - A command is applied to the copy once the store knows its outcome:
//     then the live view has had it. One with no outcome yet is kept
//     pending, in order, and asked about again.
//   - To swap, the store fences the view (FencedCopy.SwapFenced): in one
//     transaction that waits for the view's commits under way and holds up
//     those that come, the pending commands with an outcome by now are
//     applied and written, and the copy made live. A command decided later
//     is decided on the new records; one decided on the old records but not
//     committed fails its commit (CommitFenced) and is decided again.
//
// Reads of the view never stop.

// rebuildScaled is Rebuild for a scaled-out engine over a store that fences
// views (ViewFence, FencedCopy).
func (e *Engine) rebuildScaled(ctx context.Context, def plait.Definition, progress func(Progress)) (Progress, error) {
	typ := def.Type()
	if _, ok := e.raw.(ViewFence); !ok {
		return Progress{}, fmt.Errorf("engine: rebuild %s: the store cannot fence a view, which a scaled-out rebuild needs", typ)
	}
	sr := &scaledRebuild{rebuild: rebuild{e: e, def: def, shadow: map[string]*shadowInst{}, dirty: map[string]bool{},
		reporter: newReporter(e, Progress{Type: typ, Phase: "replaying"}, progress)}}
	// Each log is read for the events of its types: other applications'
	// first, for this one's views react to them, then this one's own.
	read := map[string]bool{}
	sr.own = sr.source(e.store, slices.Collect(maps.Keys(e.defs)), read)
	for _, src := range e.opts.EventSources {
		sr.sources = append(sr.sources, sr.source(src.Log, src.Types, read))
	}
	sr.sources = append(sr.sources, sr.own)
	for _, r := range e.reactors {
		for _, k := range r.reactor.Subscriptions() {
			if src, _, _ := strings.Cut(k, "."); !read[src] {
				// Its events are recorded in the store of the application
				// that owns the type, not in this one's.
				return Progress{}, fmt.Errorf("engine: rebuild %s: reactor %s reacts to %s, recorded by another application whose log is not among the engine's event sources (Options.EventSources)",
					typ, r.reactor.Name(), k)
			}
		}
	}
	// readPath offers StagedViews over every store.
	staged, err := e.store.(StagedViews).StageView(ctx, typ, def.Settings())
	if err != nil {
		return Progress{}, fmt.Errorf("rebuild %s: %w", typ, err)
	}
	defer staged.Cleanup(context.WithoutCancel(ctx))
	fc, ok := staged.(FencedCopy)
	if !ok {
		return Progress{}, fmt.Errorf("engine: rebuild %s: the store's copies cannot be swapped behind a fence", typ)
	}
	defer func(start time.Time) { sr.p.Replaying = time.Since(start) - sr.p.Paused }(time.Now())

	// Replay and write the copy while the world goes on, until a round
	// leaves little to do in the swap.
	for {
		from := sr.p.Events
		if err := sr.catchUp(ctx); err != nil {
			return sr.p, fmt.Errorf("rebuild %s: %w", typ, err)
		}
		n := len(sr.dirty)
		if err := writeDirty(ctx, staged, sr.dirty, sr.record); err != nil {
			return sr.p, fmt.Errorf("rebuild %s: %w", typ, err)
		}
		if n < rebuildPage && sr.p.Events-from < rebuildPage {
			break
		}
	}

	sr.p.Phase = "swapping"
	sr.report(true)
	paused := time.Now()
	err = fc.SwapFenced(ctx, func(ctx context.Context, write func([]Instance) error) error {
		if err := sr.catchUp(ctx); err != nil {
			return err
		}
		return writeDirty(ctx, writer(write), sr.dirty, sr.record)
	})
	sr.p.Paused = time.Since(paused)
	if err != nil {
		return sr.p, fmt.Errorf("rebuild %s: %w", typ, err)
	}
	sr.p.Phase = "done"
	sr.report(true)
	e.log.Info("view rebuilt", "view", typ, "events", sr.p.Events, "instances", sr.p.Instances,
		"pending", len(sr.pending), "elapsed", sr.p.Elapsed.Round(time.Millisecond).String(), "paused", sr.p.Paused.Round(time.Millisecond).String())
	return sr.p, nil
}

// scaledRebuild is a rebuild whose commands wait for their outcome.
type scaledRebuild struct {
	rebuild
	// sources are the logs the reactors' events are read from: each of
	// Options.EventSources, then this application's store, own.
	sources []*eventCursor
	own     *eventCursor
	pending []plait.Command // commands to the view with no outcome yet, in event order
}

// eventCursor is how far a rebuild has read one log, of the events of
// the given types.
type eventCursor struct {
	log   Feed
	types map[string]bool
	keys  []string // the subscribed "type.name" keys of types
	pos   int64
}

// source is a log to read for the events of types, but those read in
// another log already, which it marks in read.
func (sr *scaledRebuild) source(log Feed, types []string, read map[string]bool) *eventCursor {
	c := &eventCursor{log: log, types: map[string]bool{}}
	for _, t := range types {
		if !read[t] {
			c.types[t], read[t] = true, true
		}
	}
	for _, k := range sr.keys() {
		if typ, _, _ := strings.Cut(k, "."); c.types[typ] {
			c.keys = append(c.keys, k)
		}
	}
	return c
}

// catchUp reads every source up to its head and applies the commands
// with an outcome. Sources are read one after the other: the views the
// reactors of several applications feed converge whatever the order of
// the reactions of different instances, as they must, scaled out, where
// every partition is consumed at its own pace.
func (sr *scaledRebuild) catchUp(ctx context.Context) error {
	for _, c := range sr.sources {
		head, err := c.log.Head(ctx)
		if err != nil {
			return fmt.Errorf("read the head: %w", err)
		}
		if err := sr.read(ctx, c, head); err != nil {
			return err
		}
	}
	return sr.resolve(ctx)
}

// read runs the reactors on the events of c after its position up to
// upTo, and queues their commands to the view. Where the log can, only
// the events some reactor subscribes to are read.
func (sr *scaledRebuild) read(ctx context.Context, c *eventCursor, upTo int64) error {
	filtered, canFilter := c.log.(FilteredEvents)
	view := sr.def.Type()
	if len(c.keys) == 0 {
		return nil // no reactor reacts to the events of this log
	}
	for c.pos < upTo {
		var evs []plait.Event
		var err error
		if canFilter {
			evs, err = filtered.ReadEventsOf(ctx, c.pos, upTo, c.keys, rebuildPage)
		} else {
			evs, err = c.log.ReadEvents(ctx, c.pos, rebuildPage)
		}
		if err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		for _, ev := range evs {
			if ev.Position > upTo {
				break
			}
			c.pos = ev.Position
			if !c.types[ev.Type] {
				continue // another application's type, read in its own log
			}
			for _, r := range sr.e.reactors {
				for _, cmd := range sr.e.reactionsTo(r.reactor, ev, true) {
					if cmd.Type == view {
						sr.pending = append(sr.pending, cmd)
					}
				}
			}
			sr.p.Events++
		}
		if len(evs) < rebuildPage || evs[len(evs)-1].Position >= upTo {
			c.pos = upTo
		}
		if c == sr.own {
			sr.p.Position = c.pos // progress reports this application's log
		}
		sr.report(false)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// resolve applies, in order, the pending commands that have an outcome,
// and keeps the others.
func (sr *scaledRebuild) resolve(ctx context.Context) error {
	k, ok := sr.e.store.(commandsKnower) // readPath offers it
	if !ok {
		return errors.New("engine: the store cannot tell which commands have an outcome")
	}
	kept := sr.pending[:0]
	for start := 0; start < len(sr.pending); start += copyBatch {
		chunk := sr.pending[start:min(start+copyBatch, len(sr.pending))]
		ids := make([]string, len(chunk))
		for i, c := range chunk {
			ids[i] = c.ID
		}
		known, err := k.KnownCommands(ctx, ids)
		if err != nil {
			return fmt.Errorf("look up outcomes: %w", err)
		}
		for _, c := range chunk {
			if known[c.ID] {
				sr.apply(c)
			} else {
				kept = append(kept, c)
			}
		}
	}
	clear(sr.pending[len(kept):])
	sr.pending = kept
	return nil
}

// writer is a write to a copy, as a ViewCopy that only writes.
type writer func([]Instance) error

func (w writer) Write(_ context.Context, insts []Instance) error { return w(insts) }
func (w writer) Swap(context.Context) error                      { return errors.New("engine: not a copy") }
func (w writer) Cleanup(context.Context) error                   { return nil }
