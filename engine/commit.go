package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/plaithq/plait"
)

// commitReq is one partition's batch waiting for the group commit.
type commitReq struct {
	batch []*Processed
	done  chan error
	part  *partition   // the partition that decided the batch
	gen   int64        // the partition's generation it was decided in
	trace *commitTrace // the group commit's span, nil when not traced
}

// errStaleBatch fails a batch decided on top of a batch that failed to
// commit.
var errStaleBatch = errors.New("engine: an earlier batch of the same partition failed to commit")

// commitLoop is the group commit: it takes every batch the partitions have
// ready, commits them in one store transaction, publishes what was committed
// and answers the partitions. While one commit runs, the next batches queue
// up, so throughput grows with concurrency. With a SyncingLog, a commit
// hands its group to syncLoop and goes on to the next while the first is
// made durable; a lone command is committed and synced in one step, which
// costs less.
func (e *Engine) commitLoop(ctx context.Context) {
	var groups chan written
	var unsynced atomic.Int64 // groups handed to syncLoop and not yet answered
	sl, syncing := syncingLog(e.store)
	if syncing {
		groups = make(chan written, maxInflight)
		synced := make(chan struct{})
		go func() { defer close(synced); e.syncLoop(sl, groups, &unsynced) }()
		defer func() { close(groups); <-synced }()
	}
	for {
		var first *commitReq
		select {
		case first = <-e.commits:
		case <-ctx.Done():
			return
		}
		reqs := []*commitReq{first}
	drain:
		for {
			select {
			case r := <-e.commits:
				reqs = append(reqs, r)
			default:
				break drain
			}
		}
		live := reqs[:0]
		for _, r := range reqs {
			if r.part != nil && r.gen != r.part.gen.Load() {
				r.done <- errStaleBatch
				continue
			}
			live = append(live, r)
		}
		if len(live) == 0 {
			continue
		}
		var all []*Processed
		for _, r := range live {
			all = append(all, r.batch...)
		}
		g := written{live: live, all: all, ct: e.traceCommitStart(live), start: time.Now()}
		if err := e.brokenDown(); err != nil {
			e.finishCommit(g, err) // written after a lost sync, it could not be durable
			continue
		}
		// A group of one command with nothing behind it is committed and
		// synced in one step: there is nothing to overlap. Once unsynced
		// is back at zero, every group before it is answered and
		// published, so it overtakes none.
		if syncing && (unsynced.Load() > 0 || len(all) > 1 || len(e.commits) > 0) {
			g.n = e.durability.writing()
			err := sl.CommitUnsynced(ctx, all)
			if err == nil {
				e.commitOutage.Recovered(e.log, "commits succeed again")
				unsynced.Add(1)
				groups <- g
				continue
			}
			e.commitFailed(len(all), err)
			e.finishCommit(g, err)
			// Nothing of it can be read, but reads begun during its
			// write wait for its number: syncLoop passes it in order.
			groups <- written{n: g.n, skip: true}
			continue
		}
		err := e.store.Commit(ctx, all)
		if err != nil {
			e.commitFailed(len(all), err)
		} else {
			e.commitOutage.Recovered(e.log, "commits succeed again")
			e.durability.durableThrough(lastPosition(all))
		}
		e.finishCommit(g, err)
	}
}

// commitFailed logs a failed commit of n commands, and stops the engine if
// the store says its data is damaged. A run of failures (a full disk) is
// logged when it begins and now and then while it lasts, not at every
// group commit. It runs on the commit goroutine.
func (e *Engine) commitFailed(n int, err error) {
	if errors.Is(err, ErrCorrupt) {
		e.log.Error("commit failed: the store's data is damaged; the engine stops", "commands", n, "error", err)
		e.breakDown(fmt.Errorf("engine: commit: %w", err))
		return
	}
	e.commitOutage.Failed(e.log, slog.LevelError, "commit failed", err, "commands", n)
}

// publish hands committed outcomes and events to the feed's subscribers.
func (e *Engine) publish(batch []*Processed) {
	items := make([]Item, 0, len(batch)*2)
	for _, p := range batch {
		for i := range p.Outcome.Events {
			ev := &p.Outcome.Events[i]
			items = append(items, Item{Position: ev.Position, Event: ev, Owner: p.Outcome.Owner, FormerOwner: p.FormerOwner})
		}
		out := p.Outcome
		items = append(items, Item{Position: out.Position, Outcome: &out, Owner: out.Owner})
	}
	e.tail.append(items)
	e.settle.fire()
}

// Metrics count what the engine did. Read them with Engine.Stats.
type Metrics struct {
	duplicates            atomic.Int64
	commits, commitErrors atomic.Int64
	committed             atomic.Int64
	commitNanos           atomic.Int64
	reactions             atomic.Int64
	// byType counts outcomes per aggregate type, made by New for every
	// type the engine decides; Stats sums them.
	byType map[string]*typeCounts
}

// typeCounts count the outcomes of one aggregate type's commands.
type typeCounts struct{ accepted, rejected atomic.Int64 }

// outcome counts a command's outcome, of a type the engine decides.
func (m *Metrics) outcome(out plait.Outcome) {
	c := m.byType[out.Command.Type]
	switch {
	case c == nil: // not one of the engine's types: never decided here
	case out.Status == plait.StatusAccepted:
		c.accepted.Add(1)
	default:
		c.rejected.Add(1)
	}
}

func (m *Metrics) observeCommit(n int, d time.Duration, err error) {
	if err != nil {
		m.commitErrors.Add(1)
		return
	}
	m.commits.Add(1)
	m.committed.Add(int64(n))
	m.commitNanos.Add(int64(d))
}

// Stats is a snapshot of the engine's counters.
type Stats struct {
	// Accepted and Rejected count the commands decided here; Duplicates
	// the submissions of a command id already known, answered with its
	// first outcome.
	Accepted, Rejected, Duplicates int64
	Commits, CommitErrors          int64 // group commits done and failed
	Committed                      int64 // commands committed
	CommitTime                     time.Duration
	Head                           int64 // the last position published
	Reactions                      int64 // commands the reactors sent from this instance
	Subscriptions                  []Subscription
	// Types are the outcomes decided here, by aggregate type. A view's
	// rejections are commands of its reactors that it refused, which a
	// healthy application has none of.
	Types map[string]TypeStats
}

// TypeStats count the outcomes of one aggregate type's commands.
type TypeStats struct{ Accepted, Rejected int64 }

// Subscription is where one reactor stands in the feed.
type Subscription struct {
	Name     string
	Position int64
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	m := &e.metrics
	s := Stats{
		Duplicates: m.duplicates.Load(),
		Commits:    m.commits.Load(), CommitErrors: m.commitErrors.Load(),
		Committed: m.committed.Load(), CommitTime: time.Duration(m.commitNanos.Load()),
		Reactions: m.reactions.Load(),
		Types:     make(map[string]TypeStats, len(m.byType)),
	}
	for typ, c := range m.byType {
		t := TypeStats{Accepted: c.accepted.Load(), Rejected: c.rejected.Load()}
		s.Types[typ] = t
		s.Accepted += t.Accepted
		s.Rejected += t.Rejected
	}
	s.Head = e.tail.headPos()
	if !e.reactsFromLog() { // else their positions are offsets of the command log's topics
		for _, r := range e.reactors {
			s.Subscriptions = append(s.Subscriptions, Subscription{Name: r.name, Position: r.pos.Load()})
		}
	}
	return s
}
