package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/internal/outage"
)

// reactorRun is one reactor's subscription to the feed.
type reactorRun struct {
	reactor *plait.Reactor
	name    string       // the checkpoint's name
	pos     atomic.Int64 // the checkpoint, mirrored in memory (or past it, over positions no item has)
	// midPage is set while a page the reactor failed to finish awaits its
	// retry, and from the start until its first page or empty read (a
	// crash may have cut a page short): some of its commands may be
	// committed, the checkpoint is before them, and a rebuild must not
	// swap until the page is done.
	midPage atomic.Bool
}

// reactorPage is how many feed items a reactor handles between checkpoints.
const reactorPage = 256

// runReactor feeds the reactor every event after its checkpoint until ctx
// is done. The commands of one page are sent in event order, all outcomes
// are awaited, then the checkpoint moves past the page, all with work. A
// crash before the checkpoint replays the page, and the derived command
// ids make that harmless.
func (e *Engine) runReactor(ctx, work context.Context, r *reactorRun) {
	// A failing page is retried, backing off; the run of failures is
	// logged when it begins, now and then while it lasts, and when it ends.
	down := outage.Outage{Min: 10 * time.Millisecond, Max: 5 * time.Second}
	for ctx.Err() == nil {
		changed := e.FeedChanged()
		head := e.Head()
		items, err := e.readFeed(ctx, r.pos.Load(), reactorPage)
		if err == nil && len(items) == 0 {
			r.midPage.Store(false) // nothing after the checkpoint: no page to finish
			// Nothing up to the head: positions a restored store skipped
			// (see sqlite.Restore) are behind the reactor, not ahead.
			if head > r.pos.Load() {
				r.pos.Store(head)
			}
		}
		if err == nil && len(items) > 0 {
			e.reactorGate.RLock()
			err = e.react(work, r, items)
			r.midPage.Store(err != nil) // before a rebuild can take the gate
			e.reactorGate.RUnlock()
		}
		if errors.Is(err, plait.ErrStopped) {
			return
		}
		if err != nil && ctx.Err() != nil {
			return // stopping: the read or the page was cut short
		}
		if err != nil {
			wait := down.Failed(e.log, slog.LevelError, "reactor failed; retrying", err, "reactor", r.reactor.Name())
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
			continue
		}
		down.Recovered(e.log, "reactor recovered", "reactor", r.reactor.Name())
		if len(items) == 0 {
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}
}

// react handles one page of the feed and moves the checkpoint past it.
// The commands are sent with ctx, and their outcomes awaited with it.
func (e *Engine) react(ctx context.Context, r *reactorRun, items []Item) error {
	var waits []func() error
	sent := map[instKey]*future{}
	for _, it := range items {
		if it.Event == nil {
			continue
		}
		cmds := e.reactionsTo(r.reactor, *it.Event, false)
		if len(cmds) == 0 {
			continue
		}
		tctx, hop := e.traceReact(ctx, r, it.Event)
		for _, cmd := range cmds {
			wait, err := e.send(tctx, cmd, sent)
			if err != nil {
				endSpan(hop)
				return err
			}
			waits = append(waits, wait)
		}
		endSpan(hop)
	}
	if err := awaitAll(waits); err != nil {
		return err
	}
	last := items[len(items)-1].Position
	if err := e.store.SaveCheckpoint(ctx, r.name, last); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	r.pos.Store(last)
	e.metrics.reactions.Add(int64(len(waits)))
	e.settle.fire()
	return nil
}

// awaitAll waits for every one of waits, even after one fails, and returns
// the first error: a page's commands are all answered before it is retried.
func awaitAll(waits []func() error) error {
	var failed error
	for _, wait := range waits {
		if err := wait(); err != nil && failed == nil {
			failed = err
		}
	}
	return failed
}

func safeReact(r *plait.Reactor, ev plait.Event) (cmds []plait.Command, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reactor %s panicked: %v", r.Name(), p)
		}
	}()
	return r.React(ev)
}

// WaitSettled waits until the correlation has settled: no command of it is
// pending and every event of it has been consumed by every reactor that
// subscribes to it. Reactors await the outcomes of the commands they send
// before moving their checkpoint, so this follows the causal chain to its
// end. It is exact: it waits on checkpoint moves, never on a timer.
func (e *Engine) WaitSettled(ctx context.Context, correlationID string) error {
	for {
		changed := e.settle.wait()
		idle, busy := e.whenIdle(correlationID)
		if !busy {
			ok, err := e.settled(ctx, correlationID)
			if err != nil || ok {
				return err
			}
		}
		select {
		case <-changed:
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// whenIdle reports whether commands of the correlation are in flight, and
// if so returns a channel closed once none is.
func (e *Engine) whenIdle(correlationID string) (idle <-chan struct{}, busy bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.corrInflight[correlationID] == 0 {
		return nil, false
	}
	ch, ok := e.corrIdle[correlationID]
	if !ok {
		ch = make(chan struct{})
		e.corrIdle[correlationID] = ch
	}
	return ch, true
}

// settled reports whether every event of the correlation, none of whose
// commands is in flight, has been consumed by every reactor that
// subscribes to it.
func (e *Engine) settled(ctx context.Context, correlationID string) (bool, error) {
	if e.reactsFromLog() {
		return e.settledFromLog(ctx, correlationID)
	}
	for _, r := range e.reactors {
		last, err := e.store.LastEventOf(ctx, correlationID, r.reactor.Subscriptions())
		if err != nil {
			return false, err
		}
		if last > r.pos.Load() {
			return false, nil
		}
	}
	return true, nil
}
