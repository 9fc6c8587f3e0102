package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/internal/outage"
)

// PublisherCheckpoint is the name of the publisher's checkpoint and lease.
const PublisherCheckpoint = "publisher:kafka"

// Lease is held by at most one publisher at a time.
type Lease interface {
	// Check returns an error when the lease may have been lost.
	Check(ctx context.Context) error
	// Release gives the lease up.
	Release()
}

// Leaser grants leases. postgres.Store's TryLease, wrapped, is one: an
// advisory lock on a connection of its own.
type Leaser interface {
	// TryLease takes the lease named name if no one holds it, without
	// waiting; ok is false when another holds it.
	TryLease(ctx context.Context, name string) (l Lease, ok bool, err error)
}

// LeaseEvicter can take a lease away from a holder that stopped, such as
// a frozen process whose lease outlives it. postgres.Store is one.
type LeaseEvicter interface {
	// LeaseHolder names who holds the lease named name, "" when no one
	// does.
	LeaseHolder(ctx context.Context, name string) (string, error)
	// EvictLease ends the lease named name if holder still holds it, and
	// reports whether it did.
	EvictLease(ctx context.Context, name, holder string) (bool, error)
}

// FeedReader reads the log of record in position order; engine.Engine and
// every engine.Store are ones.
type FeedReader interface {
	// ReadFeed returns up to limit items after position after.
	ReadFeed(ctx context.Context, after int64, limit int) ([]engine.Item, error)
}

// Publisher publishes every committed event to its type's events topic and
// every outcome to the outcomes topic, in position order, from the store's
// feed. Its checkpoint moves only after Kafka acknowledged a page, so a
// crash republishes the page with the same ids, which consumers recognise.
// Only the holder of its lease publishes; other instances stand by.
type Publisher struct {
	// Log is the application's log: topics and producer.
	Log *Log
	// Feed is read from the checkpoint on.
	Feed FeedReader
	// Changed, when set, signals that the feed may have grown
	// (engine.Engine's FeedChanged); otherwise the feed is polled.
	Changed func() <-chan struct{}
	// Checkpoints keep the publisher's position.
	Checkpoints engine.Checkpoints
	// Leaser grants the lease that makes one instance the publisher.
	Leaser Leaser
	// Standby is how often an instance without the lease tries to take it
	// (default 2s).
	Standby time.Duration
	// Takeover is how long one holder may keep the checkpoint standing
	// still, with items after it, before an instance standing by takes
	// the lease from it, when the Leaser is also a LeaseEvicter (default
	// 30s; negative: never). Keep it well above the log's ProduceTimeout:
	// a holder blocked producing for longer would be taken over too.
	// A holder that is alive moves the checkpoint a page at a time, or
	// fails within ProduceTimeout and lets the lease go; one that froze
	// would otherwise hold the lease, and every reaction, as long as its
	// database session lives. Taken from a holder that was only slow, a
	// page may be published twice, which consumers recognise.
	Takeover time.Duration
	// Retiring, when closed, tells a publisher that holds no lease to take
	// none and return: its instance is stopping (it drains its requests
	// while ctx lives on). One that holds the lease publishes on until ctx
	// ends, what the draining instance commits included.
	Retiring <-chan struct{}
	// Page caps the items published between checkpoints (default 512).
	Page int
	// Spans, when set, gives the span of a command by id
	// (engine.Engine.CommandSpan): each event and outcome goes out with the
	// W3C trace context of the command that caused it, when valid, in its
	// traceparent and tracestate headers, and the reactors' hops continue
	// that trace.
	Spans func(commandID string) trace.SpanContext

	// What Stats reports.
	holding            atomic.Bool
	checkpoint         atomic.Int64
	published, stopped atomic.Int64
}

// PublisherStats is what a Publisher did, for metrics.
type PublisherStats struct {
	// Holding reports whether this instance holds the lease: it publishes.
	Holding bool
	// Checkpoint is the last checkpoint it saved while it held the lease.
	Checkpoint int64
	// Published counts the feed items it published.
	Published int64
	// Stopped counts the times it stopped publishing on an error (the
	// broker, the store, the lease lost) and let the lease go.
	Stopped int64
}

// Stats returns what the publisher did; it is safe to call while Run runs.
func (p *Publisher) Stats() PublisherStats {
	return PublisherStats{Holding: p.holding.Load(), Checkpoint: p.checkpoint.Load(),
		Published: p.published.Load(), Stopped: p.stopped.Load()}
}

// pollInterval is how often the feed is read when nothing signals it grew.
const pollInterval = 50 * time.Millisecond

// Run publishes while this instance holds the lease, stands by while
// another does, and returns when ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
	standby := p.Standby
	if standby <= 0 {
		standby = 2 * time.Second
	}
	log := p.Log.log
	var w stuckWatch
	// While the store fails, the failure is logged when it begins, now
	// and then while it lasts, and when it ends, not every standby.
	leasing := outage.Outage{Min: standby, Max: standby}
	watching := outage.Outage{Min: standby, Max: standby}
	for ctx.Err() == nil {
		select {
		case <-p.Retiring:
			return nil
		default:
		}
		lease, ok, err := p.Leaser.TryLease(ctx, PublisherCheckpoint)
		if err == nil {
			leasing.Recovered(log, "kafka publisher: the lease can be asked for again")
		}
		switch {
		case err != nil:
			if ctx.Err() == nil {
				leasing.Failed(log, slog.LevelError, "kafka publisher: take the lease", err)
			}
		case ok:
			w = stuckWatch{}
			log.Info("kafka publisher: lease taken; publishing")
			p.holding.Store(true)
			err := p.publish(ctx, lease)
			p.holding.Store(false)
			lease.Release()
			if ctx.Err() != nil {
				return nil
			}
			p.stopped.Add(1)
			log.Error("kafka publisher: stopped publishing; lease released", "error", err)
		default:
			if err := p.watchHolder(ctx, &w); err != nil {
				if ctx.Err() == nil {
					watching.Failed(log, slog.LevelWarn, "kafka publisher: standing by", err)
				}
			} else {
				watching.Recovered(log, "kafka publisher: standing by, the store answers again")
			}
		}
		select {
		case <-time.After(standby):
		case <-ctx.Done():
		case <-p.Retiring:
		}
	}
	return nil
}

// DefaultTakeover is the default of Publisher.Takeover.
const DefaultTakeover = 30 * time.Second

// stuckWatch is what an instance standing by knows of the publisher: who
// holds the lease, the checkpoint it last saw, and since when that holder
// has kept it standing still with items after it.
type stuckWatch struct {
	holder     string
	checkpoint int64
	since      time.Time // zero while the publisher is caught up or moving
}

// watchHolder looks at the publisher's progress from standby, and takes
// the lease from a holder that kept the checkpoint standing still, with
// items after it, for longer than Takeover. It returns the error of a
// read of the store that failed, for the caller to log.
func (p *Publisher) watchHolder(ctx context.Context, w *stuckWatch) error {
	ev, ok := p.Leaser.(LeaseEvicter)
	takeover := p.Takeover
	if takeover == 0 {
		takeover = DefaultTakeover
	}
	if !ok || takeover < 0 {
		return nil
	}
	log := p.Log.log
	holder, err := ev.LeaseHolder(ctx, PublisherCheckpoint)
	if err != nil {
		return fmt.Errorf("find the lease's holder: %w", err)
	}
	cp, err := p.Checkpoints.Checkpoint(ctx, PublisherCheckpoint)
	if err != nil {
		return fmt.Errorf("read the checkpoint: %w", err)
	}
	waiting, err := p.Feed.ReadFeed(ctx, cp, 1)
	if err != nil {
		return fmt.Errorf("read the feed: %w", err)
	}
	now := time.Now()
	switch {
	case holder == "" || len(waiting) == 0:
		*w = stuckWatch{}
	case holder != w.holder || cp != w.checkpoint || w.since.IsZero():
		*w = stuckWatch{holder: holder, checkpoint: cp, since: now}
	case now.Sub(w.since) > takeover:
		stuck := now.Sub(w.since).Round(10 * time.Millisecond)
		w.since = now // the next attempt, if this one fails, after another Takeover
		ended, err := ev.EvictLease(ctx, PublisherCheckpoint, holder)
		if err != nil {
			log.Error("kafka publisher: the publisher is stuck, and its lease could not be taken", "holder", holder, "checkpoint", cp, "stuck", stuck.String(), "error", err)
			return nil
		}
		if ended {
			log.Warn("kafka publisher: took the lease from a publisher stuck at its checkpoint", "holder", holder, "checkpoint", cp, "stuck", stuck.String())
		}
	}
	return nil
}

// publish publishes page after page until ctx ends or something fails.
func (p *Publisher) publish(ctx context.Context, lease Lease) error {
	page := p.Page
	if page <= 0 {
		page = 512
	}
	pos, err := p.Checkpoints.Checkpoint(ctx, PublisherCheckpoint)
	if err != nil {
		return fmt.Errorf("read the checkpoint: %w", err)
	}
	p.checkpoint.Store(pos)
	for ctx.Err() == nil {
		var changed <-chan struct{}
		if p.Changed != nil {
			changed = p.Changed()
		}
		items, err := p.Feed.ReadFeed(ctx, pos, page)
		if err != nil {
			return fmt.Errorf("read the feed after %d: %w", pos, err)
		}
		if len(items) == 0 {
			select {
			case <-changed:
			case <-time.After(pollInterval):
			case <-ctx.Done():
			}
			continue
		}
		recs := make([]*kgo.Record, 0, len(items))
		for _, it := range items {
			rec, err := p.Log.record(it)
			if err != nil {
				return err
			}
			if rec == nil {
				continue
			}
			if p.Spans != nil {
				// An event and an outcome both go out under the span of
				// the command that caused them.
				cause := ""
				switch {
				case it.Event != nil:
					cause = it.Event.CausationID
				case it.Outcome != nil:
					cause = it.Outcome.Command.ID
				}
				injectTrace(trace.ContextWithSpanContext(ctx, p.Spans(cause)), rec)
			}
			recs = append(recs, rec)
		}
		if err := lease.Check(ctx); err != nil {
			return err
		}
		// Within ProduceTimeout, or this page is given up on; a record
		// still in flight may be published after all, and is published
		// again from the checkpoint, which consumers recognise.
		if err := p.Log.produce(ctx, recs...); err != nil {
			return fmt.Errorf("produce positions %d to %d: %w", items[0].Position, items[len(items)-1].Position, err)
		}
		last := items[len(items)-1].Position
		if err := lease.Check(ctx); err != nil {
			return err
		}
		if err := p.Checkpoints.SaveCheckpoint(ctx, PublisherCheckpoint, last); err != nil {
			return fmt.Errorf("save the checkpoint at %d: %w", last, err)
		}
		p.checkpoint.Store(last)
		p.published.Add(int64(len(items)))
		pos = last
	}
	return nil
}

// record is the Kafka record of a feed item, nil for an item that is
// neither an event nor an outcome.
func (l *Log) record(it engine.Item) (*kgo.Record, error) {
	switch {
	case it.Event != nil:
		return l.eventRecord(*it.Event), nil
	case it.Outcome != nil:
		return l.outcomeRecord(*it.Outcome)
	}
	return nil, nil
}

// eventRecord is an event in CloudEvents' Kafka binary mode: the value is
// the event's data, the envelope is in headers; see the package doc.
func (l *Log) eventRecord(ev plait.Event) *kgo.Record {
	value := []byte(ev.Data)
	if len(value) == 0 {
		value = []byte("null")
	}
	rec := &kgo.Record{Topic: l.EventsTopic(ev.Type), Key: []byte(ev.AggregateID), Value: value}
	rec.Headers = append(ceHeaders(ev.ID, l.source(ev.Type, ev.AggregateID), ev.Type+"."+ev.Name, ev.At, ev.AggregateID),
		header("plait_seq", strconv.FormatInt(ev.Seq, 10)),
		header("plait_correlationid", ev.CorrelationID),
		header("plait_causationid", ev.CausationID),
		header("plait_position", strconv.FormatInt(ev.Position, 10)),
		header("plait_user", ev.User),
	)
	if ev.Version > 1 {
		rec.Headers = append(rec.Headers, header("plait_version", strconv.Itoa(ev.Version)))
	}
	if len(ev.Lineage) > 0 {
		if b, err := json.Marshal(ev.Lineage); err == nil {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "plait_lineage", Value: b})
		}
	}
	return rec
}

// outcomeRecord is an outcome: the value is the outcome's JSON without its
// events (they are on the events topics) nor the instance's owner.
func (l *Log) outcomeRecord(out plait.Outcome) (*kgo.Record, error) {
	out.Events, out.Owner = nil, ""
	value, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode the outcome of %s: %w", out.Command.ID, err)
	}
	c := out.Command
	rec := &kgo.Record{Topic: l.OutcomesTopic(), Key: []byte(c.AggregateID), Value: value}
	rec.Headers = append(ceHeaders(c.ID, l.source(c.Type, c.AggregateID), "plait.outcome."+string(out.Status), c.At, c.AggregateID),
		header("plait_status", string(out.Status)),
		header("plait_correlationid", c.CorrelationID),
		header("plait_position", strconv.FormatInt(out.Position, 10)),
		header("plait_user", c.User),
	)
	return rec, nil
}

// source is the CloudEvents source of an aggregate instance.
func (l *Log) source(typ, id string) string { return "/" + l.app.Name + "/" + typ + "/" + id }

func ceHeaders(id, source, typ string, at time.Time, subject string) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		header("ce_specversion", "1.0"),
		header("ce_id", id),
		header("ce_source", source),
		header("ce_type", typ),
		header("ce_time", at.UTC().Format(time.RFC3339Nano)),
		header("ce_subject", subject),
		header("content-type", "application/json"),
	}
}

func header(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }
