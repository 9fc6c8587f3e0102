package engine

import (
	"context"
	"sort"
	"time"

	"github.com/plaithq/plait"
)

// This file holds what a view rebuild (rebuild.go) and an aggregate replay
// (replay.go) share: making the copy live (swapIn), writing its records,
// and reporting progress at a bounded rate.

// copyBatch is how many records one write to a staged copy carries.
const copyBatch = 1000

// sortedIDs returns the ids of m for which keep is true, sorted.
func sortedIDs[V any](m map[string]V, keep func(V) bool) []string {
	ids := make([]string, 0, len(m))
	for id, v := range m {
		if keep(v) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// records returns the records of ids, in order.
func records(ids []string, record func(id string) (Instance, error)) ([]Instance, error) {
	out := make([]Instance, len(ids))
	for i, id := range ids {
		in, err := record(id)
		if err != nil {
			return nil, err
		}
		out[i] = in
	}
	return out, nil
}

// writeDirty writes the records of the ids in dirty to the copy, a batch at
// a time, and empties dirty.
func writeDirty(ctx context.Context, c ViewCopy, dirty map[string]bool, record func(id string) (Instance, error)) error {
	ids := sortedIDs(dirty, func(bool) bool { return true })
	for len(ids) > 0 {
		n := min(len(ids), copyBatch)
		batch, err := records(ids[:n], record)
		if err != nil {
			return err
		}
		if err := c.Write(ctx, batch); err != nil {
			return err
		}
		ids = ids[n:]
	}
	clear(dirty)
	return nil
}

// reporter hands progress to a callback, at most four times a second unless
// forced.
type reporter struct {
	e        *Engine
	p        Progress
	start    time.Time
	last     time.Time
	progress func(Progress)
}

func newReporter(e *Engine, p Progress, progress func(Progress)) reporter {
	return reporter{e: e, p: p, start: time.Now(), progress: progress}
}

// emit updates the counts and, when due or forced, reports. While the
// copy is swapped in, writes wait: only a forced report is made then, so
// that a slow reader of the progress cannot make them wait longer.
func (r *reporter) emit(force bool, instances int) {
	r.p.Instances = instances
	r.p.Elapsed = time.Since(r.start)
	if r.progress == nil || (!force && (r.p.Phase == "swapping" || time.Since(r.last) < 250*time.Millisecond)) {
		return
	}
	r.last = time.Now()
	r.p.Head = r.e.Head()
	r.progress(r.p)
}

// freshCopy is a type's instances made afresh from the log beside the live
// ones: a view's through its reactors (rebuild), or any type's folded from
// its own events (replay).
type freshCopy interface {
	// catchUp brings the copy close to where it must reach, while the
	// world goes on.
	catchUp(ctx context.Context) error
	// changed is how many instances changed since the last writeDirty.
	changed() int
	// writeDirty writes those instances to c.
	writeDirty(ctx context.Context, c ViewCopy) error
	// stopWorld takes the reactors' gate, then the partitions'.
	stopWorld(ctx context.Context) error
	// finish, the world stopped, brings the copy exactly to where it must
	// reach.
	finish(ctx context.Context) error
	reporting() *reporter
	report(force bool)
}

// swapIn makes c and swaps it in for def's live instances. It writes the
// copy beside them while the world goes on, until little is left to
// write; then it stops the world just long enough to finish the copy and
// make it live in one transaction. Reads never stop.
func (e *Engine) swapIn(ctx context.Context, def plait.Definition, c freshCopy) error {
	if err := c.catchUp(ctx); err != nil {
		return err
	}
	// readPath offers StagedViews over every store: one without copies of
	// its own gets a copy kept in memory.
	staged, err := e.store.(StagedViews).StageView(ctx, def.Type(), def.Settings())
	if err != nil {
		return err
	}
	defer staged.Cleanup(context.WithoutCancel(ctx))
	for {
		if err := c.writeDirty(ctx, staged); err != nil {
			return err
		}
		if err := c.catchUp(ctx); err != nil {
			return err
		}
		if c.changed() < rebuildPage {
			break
		}
	}

	r := c.reporting()
	r.p.Phase = "swapping"
	c.report(true)
	paused := time.Now()
	if err := c.stopWorld(ctx); err != nil {
		return err
	}
	err = c.finish(ctx)
	if err == nil {
		err = c.writeDirty(ctx, staged)
	}
	if err == nil {
		err = staged.Swap(ctx)
	}
	if err == nil {
		e.cacheEpoch.Add(1)
	}
	e.partitionGate.Unlock()
	e.reactorGate.Unlock()
	r.p.Paused = time.Since(paused)
	if err != nil {
		return err
	}
	r.p.Phase = "done"
	c.report(true)
	return nil
}
