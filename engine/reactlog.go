package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/plaithq/plait"
)

// EventBatch is a run of events consumed from one partition of an events
// topic of an external log, in log order, and the offset just after them.
type EventBatch struct {
	Events []plait.Event
	Offset Offset
	// Traces are the trace contexts the events were published with, by
	// index in Events; one beyond its end, or empty, has none.
	Traces []TraceContext
}

// ReactingLog is a CommandLog that also hands the application's reactors
// the events they subscribe to, from the same external log and through the
// same consumer group: each partition of an events topic is consumed by
// the one instance that owns it, so each reaction is computed by one
// instance, and the partitions move when instances come and go.
type ReactingLog interface {
	CommandLog
	// ConsumeWithEvents is Consume that also hands react the events of
	// the types the application's reactors subscribe to, batch by batch,
	// one partition at a time, as Consume does commands. A partition
	// resumes from the offset the store committed for it. The context
	// react gets ends when the partition is taken away, and a batch whose
	// react failed is handed again from the store's offset: a reaction may
	// then run twice, which the reactions' derived command ids make
	// harmless.
	ConsumeWithEvents(ctx context.Context, handle func(ctx context.Context, b LogBatch) error, react func(ctx context.Context, b EventBatch) error) error
}

// CorrelationEvents is what a store offers to tell, exactly, whether the
// reactions a correlation caused are done when the reactors consume an
// external log rather than the store's feed.
type CorrelationEvents interface {
	// EventsOf returns the events of the correlation whose "type.name" key
	// is in keys, in position order.
	EventsOf(ctx context.Context, correlationID string, keys []string) ([]plait.Event, error)
}

// reactsFromLog reports whether the reactors consume the external log's
// events topics rather than the store's feed.
func (e *Engine) reactsFromLog() bool { return e.reacting != nil && len(e.reactors) > 0 }

// reactToLog runs every reactor on a batch of events consumed from the
// external log, sends their commands, awaits every outcome, then commits
// the batch's offset to the store. The offset only moves forward in the
// store: a former owner of the partition that finishes late fails to move
// it back. Until the offset is committed a crash hands the batch again,
// and the reactions' derived ids make the second run harmless.
func (e *Engine) reactToLog(ctx context.Context, b EventBatch) error {
	var waits []func() error
	reactions := 0
	for i := range b.Events {
		ev := b.Events[i]
		if err := e.up.upcast(&ev); err != nil {
			e.log.Error("upcast an event from the log; skipped", "event", ev.ID, "error", err)
			continue
		}
		for _, r := range e.reactors {
			cmds := e.reactionsTo(r.reactor, ev, false)
			rctx, hop := e.traceReactLogged(ctx, r, &ev, b.traceContext(i))
			for _, cmd := range cmds {
				wait, err := e.send(rctx, cmd, nil)
				if err != nil {
					endSpan(hop)
					return err
				}
				waits = append(waits, wait)
				reactions++
			}
			endSpan(hop)
		}
	}
	if err := awaitAll(waits); err != nil {
		return err
	}
	oc := e.store.(OffsetCommitter)
	if err := oc.CommitWithOffsets(ctx, nil, []Offset{b.Offset}); err != nil {
		return fmt.Errorf("commit the offset of %s/%d at %d: %w", b.Offset.Topic, b.Offset.Partition, b.Offset.Next, err)
	}
	e.metrics.reactions.Add(int64(reactions))
	e.settle.fire()
	return nil
}

// reactionsTo returns the commands reactor r sends for ev, leaving out, with
// a log line unless quiet, those it cannot send: a bug in the application,
// which retrying cannot fix.
func (e *Engine) reactionsTo(r *plait.Reactor, ev plait.Event, quiet bool) []plait.Command {
	if !r.Subscribes(ev.Type, ev.Name) {
		return nil
	}
	cmds, err := safeReact(r, ev)
	if err != nil {
		if quiet {
			return nil
		}
		e.log.Error("reactor failed on an event; skipped", "reactor", r.Name(),
			"event", ev.ID, "event_name", ev.Type+"."+ev.Name, "correlation", ev.CorrelationID, "error", err)
		return nil
	}
	out := cmds[:0]
	for _, cmd := range cmds {
		if def, ok := e.defs[cmd.Type]; !ok {
			if !quiet {
				e.log.Error("reactor sent a command of an unknown type; skipped", "reactor", r.Name(),
					"event", ev.ID, "event_name", ev.Type+"."+ev.Name, "type", cmd.Type, "command", cmd.Name)
			}
			continue
		} else if err := plait.CheckOf(def, cmd); err != nil {
			if !quiet {
				e.log.Error("reactor sent an invalid command; skipped", "reactor", r.Name(),
					"event", ev.ID, "event_name", ev.Type+"."+ev.Name, "type", cmd.Type, "command", cmd.Name, "error", err)
			}
			continue
		}
		out = append(out, cmd)
	}
	return out
}

// settledFromLog tells whether the reactions of the correlation are done
// when the reactors consume the external log: every event of the
// correlation that a reactor subscribes to has had every command the
// reactor derives from it decided. Reactors are pure and the ids of their
// commands derived, so this asks the store, exactly, without knowing which
// instance reacted nor where its partition stands.
func (e *Engine) settledFromLog(ctx context.Context, correlationID string) (bool, error) {
	ce, ok := e.raw.(CorrelationEvents)
	if !ok {
		return false, errors.New("engine: the store cannot list a correlation's events, which settling needs when reactors consume the command log")
	}
	var keys []string
	for _, r := range e.reactors {
		keys = append(keys, r.reactor.Subscriptions()...)
	}
	evs, err := ce.EventsOf(ctx, correlationID, keys)
	if err != nil {
		return false, err
	}
	var ids []string
	for i := range evs {
		if err := e.up.upcast(&evs[i]); err != nil {
			continue // reactToLog skips it too
		}
		for _, r := range e.reactors {
			for _, cmd := range e.reactionsTo(r.reactor, evs[i], true) {
				ids = append(ids, cmd.ID)
			}
		}
	}
	if len(ids) == 0 {
		return true, nil
	}
	if k, ok := e.store.(commandsKnower); ok {
		known, err := k.KnownCommands(ctx, ids)
		if err != nil {
			return false, err
		}
		for _, id := range ids {
			if !known[id] {
				return false, nil
			}
		}
		return true, nil
	}
	for _, id := range ids {
		if _, ok, err := e.store.Outcome(ctx, id); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// withEvents is a ReactingLog seen as a CommandLog whose Consume consumes
// the reactors' events too, so that whatever wraps the command log (the
// sealing of personal fields) wraps it unchanged.
type withEvents struct {
	ReactingLog
	react func(ctx context.Context, b EventBatch) error
}

// Consume consumes the commands, with handle, and the reactors' events.
func (w withEvents) Consume(ctx context.Context, handle func(ctx context.Context, b LogBatch) error) error {
	return w.ConsumeWithEvents(ctx, handle, w.react)
}

// LagReporter is a CommandLog that can tell how far this instance's
// consumption of the log is behind.
type LagReporter interface {
	// PartitionLags lists the partitions this instance consumes now, with
	// the records of each it has not handled yet.
	PartitionLags() []PartitionLag
}

// PartitionLag is how far this instance is behind in one partition of the
// external log.
type PartitionLag struct {
	Topic     string
	Partition int32
	// AggregateType is the type whose commands, or with Events its
	// events, the topic holds.
	AggregateType string
	Events        bool
	// Records counts the records of the partition not handled yet.
	Records int64
}

// Lag is how far one of the engine's consumers is behind.
type Lag struct {
	Name   string // "reactor:NAME", or "commands" for the decisions of a scaled-out engine
	Behind int64  // feed positions embedded; records of the log's partitions scaled out
}

// CommandsLag is the Lag.Name of a scaled-out engine's decisions: the
// commands of the partitions it owns, appended and not yet decided.
const CommandsLag = "commands"

// Lags reports how far each of the engine's consumers is behind.
// Embedded, a reactor's lag is the feed positions from its checkpoint to
// the head. Scaled out, when the command log can tell (a LagReporter),
// each instance reports the partitions it owns: a reactor's lag is the
// records of its types' events topics it has not handled, and
// CommandsLag the commands not yet decided; summed over the instances,
// they are the application's. A log that cannot tell reports neither;
// reactors that read the store's feed are reported as embedded.
func (e *Engine) Lags() []Lag {
	var lags []Lag
	byType := map[string]int64{}
	counted := e.lagging != nil
	if e.scaled() && counted {
		var commands int64
		for _, p := range e.lagging.PartitionLags() {
			if p.Events {
				byType[p.AggregateType] += p.Records
			} else {
				commands += p.Records
			}
		}
		lags = append(lags, Lag{Name: CommandsLag, Behind: commands})
	}
	if !e.reactsFromLog() {
		st := e.Stats()
		for _, s := range st.Subscriptions {
			lags = append(lags, Lag{Name: s.Name, Behind: max(st.Head-s.Position, 0)})
		}
		return lags
	}
	if !counted {
		return lags
	}
	for _, r := range e.reactors {
		var n int64
		for _, typ := range r.reactor.Types() {
			n += byType[typ]
		}
		lags = append(lags, Lag{Name: r.name, Behind: n})
	}
	return lags
}
