package engine

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// SyncingLog is a Log that can write a batch and make it durable in two
// steps, so that the group commit overlaps one batch's fsync with writing
// the next. The engine answers a batch, and publishes it, only once a Sync
// that began after it was written has returned: an acknowledged command is
// as durable as with Commit.
type SyncingLog interface {
	// CommitUnsynced writes the batch as Commit does, but may return before
	// it is durable. Reads may see it at once.
	CommitUnsynced(ctx context.Context, batch []*Processed) error
	// Sync makes every batch written before it began durable.
	Sync(ctx context.Context) error
}

// syncingLog returns st as a SyncingLog, seals included, if it is one.
func syncingLog(st Store) (SyncingLog, bool) {
	if rp, ok := st.(readPath); ok {
		inner, ok := rp.Store.(SyncingLog)
		if !ok {
			return nil, false
		}
		return readPathSync{rp: rp, SyncingLog: inner}, true
	}
	sl, ok := st.(SyncingLog)
	return sl, ok
}

// readPathSync seals a batch's personal fields before writing it, as
// readPath.Commit does.
type readPathSync struct {
	rp readPath
	SyncingLog
}

func (s readPathSync) CommitUnsynced(ctx context.Context, batch []*Processed) error {
	if err := s.rp.sh.sealBatch(ctx, batch); err != nil {
		return err
	}
	return s.SyncingLog.CommitUnsynced(ctx, batch)
}

// written is a group commit written but not yet durable; or, with skip,
// only the number of a group whose write failed, which nothing can see.
type written struct {
	live  []*commitReq
	all   []*Processed
	start time.Time
	ct    *commitTrace
	n     int64 // the group's number, see durability
	skip  bool
}

// durability keeps reads from showing what may not survive a power cut.
// CommitUnsynced makes a group visible to reads before its Sync; a reader
// could then see an outcome, say "accepted", that the disk loses, while its
// command, never acknowledged, is sent again and decided afresh. So a read
// answers only once every group whose write had begun when it had read is
// durable: a group is numbered before it is written, so whatever the read
// saw has a number no higher. That is a Sync or two at most, and no wait
// while nothing is unsynced.
type durability struct {
	begun   atomic.Int64 // the number of the last group whose write began
	synced  atomic.Int64 // every group up to this number is durable, or failed unseen
	pos     atomic.Int64 // every position up to this one is durable (a Sync covers the whole log, an earlier run's part too)
	changed *broadcast   // fires when synced moves
}

// writing numbers a group whose write is about to begin.
func (d *durability) writing() int64 { return d.begun.Add(1) }

// durableUpTo records that the groups up to n are durable or failed
// unseen, and the positions up to pos durable.
func (d *durability) durableUpTo(n, pos int64) {
	d.durableThrough(pos)
	d.synced.Store(n)
	d.changed.fire()
}

// durableThrough records that the positions up to pos are durable.
func (d *durability) durableThrough(pos int64) {
	for {
		cur := d.pos.Load()
		if pos <= cur || d.pos.CompareAndSwap(cur, pos) {
			return
		}
	}
}

// holds reports whether position pos is known durable.
func (d *durability) holds(pos int64) bool { return pos > 0 && pos <= d.pos.Load() }

// lastPosition is the highest position of the outcomes of batch.
func lastPosition(batch []*Processed) int64 {
	var pos int64
	for _, p := range batch {
		pos = max(pos, p.Outcome.Position)
	}
	return pos
}

// durableRead ends a read of the store that returned err: unless it
// failed, it waits until what the read could have seen is durable. Call it
// after the read, before answering. It returns the breakdown's error if the
// log can no longer make it so.
func (e *Engine) durableRead(ctx context.Context, err error) error {
	if err != nil {
		return err
	}
	d := &e.durability
	target := d.begun.Load()
	for d.synced.Load() < target {
		changed := d.changed.wait()
		if d.synced.Load() >= target {
			break
		}
		select {
		case <-changed:
		case <-e.broken:
			return e.brokenErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// syncLoop makes written groups durable, as many as are waiting with one
// Sync, then publishes and answers them in the order they were written,
// counting each off unsynced. It returns when groups is closed and
// drained.
//
// A failed Sync is fatal. The pages it covered may be lost from the disk
// while reads still see them, and every later group is written after them
// in the same log, which recovery reads only up to its first lost frame:
// a later Sync that succeeds does not make them durable. So the groups it
// covered and every group after it fail, nothing of them is published,
// and the engine stops (see Engine.breakDown); a restart recovers what the
// disk holds.
func (e *Engine) syncLoop(sl SyncingLog, groups <-chan written, unsynced *atomic.Int64) {
	var failed error
	for g := range groups {
		batch := []written{g}
	drain:
		for {
			select {
			case g, ok := <-groups:
				if !ok {
					break drain
				}
				batch = append(batch, g)
			default:
				break drain
			}
		}
		last := batch[len(batch)-1].n
		batch = slices.DeleteFunc(batch, func(g written) bool { return g.skip })
		if failed == nil && len(batch) > 0 {
			// The batches are written: finish making them durable even
			// when the engine stops, so their submitters get their answer.
			if err := sl.Sync(context.Background()); err != nil {
				failed = fmt.Errorf("engine: sync the log: %w (what was written since the last sync may be lost)", err)
				e.log.Error("sync failed; the commands it covered are not acknowledged and the engine stops", "batches", len(batch), "error", err)
				e.breakDown(failed)
			}
		}
		if failed == nil {
			var pos int64
			for _, g := range batch {
				pos = max(pos, lastPosition(g.all))
			}
			e.durability.durableUpTo(last, pos)
		}
		for _, g := range batch {
			e.finishCommit(g, failed)
			unsynced.Add(-1)
		}
	}
}

// finishCommit records, publishes and answers a group commit once it is
// durable or has failed. A failed group is not published, and the
// partitions that decided it reload: they may have decided further
// batches on top of it, which their generation now refuses.
func (e *Engine) finishCommit(g written, err error) {
	g.ct.traceCommitEnd(err)
	e.metrics.observeCommit(len(g.all), time.Since(g.start), err)
	if err != nil {
		for _, r := range g.live {
			if r.part != nil {
				r.part.gen.Add(1)
			}
		}
	} else {
		e.publish(g.all)
	}
	for _, r := range g.live {
		r.done <- err
	}
}
