package engine

import (
	"context"
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
func (e *Engine) syncLoop(sl SyncingLog, groups <-chan written, unsynced *atomic.Int64) {
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
		// The batches are written: finish making them durable even when
		// the engine stops, so their submitters get their answer.
		err := sl.Sync(context.Background())
		if err != nil {
			e.log.Error("sync failed; the commands of the batches it covered are not acknowledged", "batches", len(batch), "error", err)
		}
		for _, g := range batch {
			e.finishCommit(g, err, true)
			unsynced.Add(-1)
		}
	}
}

// finishCommit records, publishes and answers a group commit once it is
// durable or has failed. A group that failed only to sync is written: the
// partitions' records of it are what the store holds, so the batches
// decided on top of it stand (they are written after it, and a log that
// loses it loses them too).
func (e *Engine) finishCommit(g written, err error, wasWritten bool) {
	g.ct.traceCommitEnd(err)
	e.metrics.observeCommit(len(g.all), time.Since(g.start), err)
	if err != nil && !wasWritten {
		// The partitions may have decided further batches on top of
		// these: refuse them, and make the partitions reload.
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
