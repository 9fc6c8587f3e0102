package engine

import (
	"context"
	"fmt"
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

// written is a group commit written but not yet durable.
type written struct {
	live  []*commitReq
	all   []*Processed
	start time.Time
	ct    *commitTrace
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
		if failed == nil {
			// The batches are written: finish making them durable even
			// when the engine stops, so their submitters get their answer.
			if err := sl.Sync(context.Background()); err != nil {
				failed = fmt.Errorf("engine: sync the log: %w (what was written since the last sync may be lost)", err)
				e.log.Error("sync failed; the commands it covered are not acknowledged and the engine stops", "batches", len(batch), "error", err)
				e.breakDown(failed)
			}
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
