package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/internal/outage"
)

// Consume joins the application's consumer group on the commands topics of
// its aggregate types and hands handle the records of the partitions this
// instance is assigned, until ctx ends; see engine.CommandLog.
//
// Each assigned partition starts at the offset Options.Offsets gives, the one
// the store committed with the outcomes: Kafka's own committed offsets are
// neither read nor written. A partition's batches are handed one at a time,
// in offset order, by a goroutine of its own, so partitions proceed in
// parallel. When a partition is revoked or lost, its records stop being
// handed and the rebalance waits for its batch in flight. When handle fails,
// the partition resumes from the offset the store has, after a backoff.
func (l *Log) Consume(ctx context.Context, handle func(ctx context.Context, b engine.LogBatch) error) error {
	return l.consume(ctx, handle, nil)
}

// ConsumeWithEvents is Consume that also consumes, in the same consumer
// group, the events topics the application's reactors subscribe to
// (ReactorTopics), and hands react their events; see engine.ReactingLog.
// Each partition of an events topic is consumed by one instance, resumes
// from the offset the store committed for it, and is handed one batch at a
// time like the commands. Unlike a batch of commands, a batch of events in
// flight is abandoned when its partition is revoked (its context ends):
// reacting awaits outcomes that may need the rebalance to complete, and
// its new owner hands it again, which the reactions' derived ids make
// harmless.
func (l *Log) ConsumeWithEvents(ctx context.Context, handle func(ctx context.Context, b engine.LogBatch) error, react func(ctx context.Context, b engine.EventBatch) error) error {
	return l.consume(ctx, handle, react)
}

var _ engine.ReactingLog = (*Log)(nil)

func (l *Log) consume(ctx context.Context, handle func(ctx context.Context, b engine.LogBatch) error, react func(ctx context.Context, b engine.EventBatch) error) error {
	if l.opts.Offsets == nil {
		return errors.New("kafka: consume: no OffsetSource in Options.Offsets")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c := &consumer{l: l, ctx: ctx, fail: cancel, handle: handle, react: react, events: map[string]bool{}, parts: map[topicPartition]*worker{}}
	topics := make([]string, 0, len(l.commands))
	for _, t := range l.commands {
		topics = append(topics, t)
	}
	if react != nil {
		for _, t := range l.ReactorTopics() {
			c.events[t] = true
			topics = append(topics, t)
		}
	}
	opts := []kgo.Opt{
		kgo.ConsumerGroup(l.opts.Group),
		kgo.ConsumeTopics(topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.AdjustFetchOffsetsFn(c.assigned),
		// Never start a partition anywhere but where the store says: an
		// offset the partition does not hold (the topic was recreated, or
		// the brokers lost records) is an error, not a silent rewind that
		// would skip every record up to the stored offset.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.OnPartitionsAssigned(c.logAssigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.revoked),
	}
	if l.opts.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(l.opts.SessionTimeout),
			kgo.HeartbeatInterval(max(l.opts.SessionTimeout/10, 100*time.Millisecond)))
	}
	cl, err := kgo.NewClient(l.clientOpts(opts...)...)
	if err != nil {
		return fmt.Errorf("kafka: make the consumer of group %s: %w", l.opts.Group, err)
	}
	c.cl = cl
	l.consumersMu.Lock()
	l.consumers[c] = true
	l.consumersMu.Unlock()
	defer func() {
		l.consumersMu.Lock()
		delete(l.consumers, c)
		l.consumersMu.Unlock()
	}()
	for {
		fetches := cl.PollRecords(ctx, 4*l.opts.MaxBatch)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			cl.AllowRebalance()
			break
		}
		fetches.EachError(func(topic string, p int32, err error) {
			switch {
			case errors.Is(err, kerr.OffsetOutOfRange):
				// Consuming on would lose commands or events: stop, loudly.
				cancel(fmt.Errorf("kafka: %s/%d does not hold the offset the store committed for it: "+
					"the topic was recreated or its brokers lost records, and consuming on would skip or lose them; "+
					"restore the topic, or reset the partition's offset in the store knowingly: %w", topic, p, err))
			case !errors.Is(err, context.Canceled):
				l.fetchFailed(topic, p, err)
			}
		})
		c.dispatch(fetches)
		// Every record polled is now queued to its partition's worker, so
		// a revocation, which runs only once rebalances are allowed, finds
		// each partition's records in one place to drop.
		cl.AllowRebalance()
	}
	// Leaving the group revokes every partition, which stops the workers
	// after their batches in flight.
	cl.Close()
	c.stopAll()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

type topicPartition struct {
	topic     string
	partition int32
}

// consumer is one Consume call: the group client and a worker per
// assigned partition.
type consumer struct {
	l      *Log
	ctx    context.Context
	fail   context.CancelCauseFunc
	handle func(context.Context, engine.LogBatch) error
	react  func(context.Context, engine.EventBatch) error
	events map[string]bool // the events topics consumed for react
	cl     *kgo.Client

	mu    sync.Mutex
	parts map[topicPartition]*worker
}

// assigned runs once the group assigned partitions to this instance,
// before they are fetched: each starts at the offset the store committed,
// with a worker of its own.
func (c *consumer) assigned(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for topic, parts := range offsets {
		for p := range parts {
			// A worker left from an assignment that did not complete
			// finishes its batch before the store is asked where to start.
			tp := topicPartition{topic, p}
			c.mu.Lock()
			old := c.parts[tp]
			delete(c.parts, tp)
			c.mu.Unlock()
			if old != nil {
				old.stop()
			}
			next, err := c.l.opts.Offsets.Offset(ctx, topic, p)
			if err != nil {
				return nil, fmt.Errorf("kafka: read the committed offset of %s/%d: %w", topic, p, err)
			}
			parts[p] = kgo.NewOffset().At(next).WithEpoch(-1)
			w := newWorker(c, tp, next)
			c.mu.Lock()
			c.parts[tp] = w
			c.mu.Unlock()
			go w.run()
			c.l.log.Debug("kafka: partition assigned", "topic", topic, "partition", p, "offset", next)
		}
	}
	return offsets, nil
}

// revoked stops handing the records of the partitions revoked or lost and
// returns once their batches in flight are done, so the next owner starts
// from what the store has.
func (c *consumer) revoked(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	if len(lost) > 0 {
		member, _ := cl.GroupMetadata()
		c.l.log.Info("kafka: partitions revoked", "member", member, "partitions", partitionList(lost))
	}
	var ws []*worker
	c.mu.Lock()
	for topic, parts := range lost {
		for _, p := range parts {
			tp := topicPartition{topic, p}
			if w := c.parts[tp]; w != nil {
				ws = append(ws, w)
				delete(c.parts, tp)
			}
		}
	}
	c.mu.Unlock()
	for _, w := range ws {
		w.signal()
	}
	for _, w := range ws {
		w.stop()
		c.l.log.Debug("kafka: partition revoked", "topic", w.tp.topic, "partition", w.tp.partition)
	}
}

// logAssigned logs, once a rebalance, the partitions the group gave this
// instance and its member id, which plait inspect shows beside each
// partition.
func (c *consumer) logAssigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	if len(assigned) == 0 {
		return
	}
	member, _ := cl.GroupMetadata()
	c.l.log.Info("kafka: partitions assigned", "member", member, "partitions", partitionList(assigned))
}

// partitionList writes partitions as "topic/0,1 other/2", topics and
// partitions in order.
func partitionList(parts map[string][]int32) string {
	var b strings.Builder
	for _, topic := range slices.Sorted(maps.Keys(parts)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(topic)
		for i, p := range slices.Sorted(slices.Values(parts[topic])) {
			if i == 0 {
				b.WriteByte('/')
			} else {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(int(p)))
		}
	}
	return b.String()
}

// stopAll stops every worker left.
func (c *consumer) stopAll() {
	c.mu.Lock()
	ws := c.parts
	c.parts = map[topicPartition]*worker{}
	c.mu.Unlock()
	for _, w := range ws {
		w.signal()
	}
	for _, w := range ws {
		w.stop()
	}
}

// dispatch queues each partition's records to its worker. Records of a
// partition without a worker (revoked meanwhile) are dropped: its next
// owner fetches them again from the store's offset.
func (c *consumer) dispatch(fetches kgo.Fetches) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		w := c.parts[topicPartition{p.Topic, p.Partition}]
		if w == nil {
			return
		}
		if p.HighWatermark > w.end.Load() {
			w.end.Store(p.HighWatermark)
		}
		if len(p.Records) > 0 {
			w.push(p.Records)
		}
	})
}

// worker hands one partition's records to handle, or to react for an
// events topic, one batch at a time.
type worker struct {
	c      *consumer
	tp     topicPartition
	next   int64 // the offset of the next record to hand
	events bool  // an events topic, handed to react
	// handled mirrors next for PartitionLags; end is the partition's end
	// offset (high watermark) as the last fetch that had it saw it.
	handled, end atomic.Int64
	// ctx is the context batches are handled in. A batch of commands
	// outlives Consume's context, so that a revocation or a shutdown lets
	// it finish; a batch of events ends with the worker.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	queue  []*kgo.Record
	paused bool
	wake   chan struct{}

	quit     chan struct{}
	quitOnce sync.Once
	done     chan struct{}

	// down is the run of failures handling batches or reading the
	// store's offset, as while the store is down: logged when it begins,
	// now and then while it lasts, and when it ends, not at every retry.
	// Its waits are not used: deliver has its own.
	down outage.Outage
}

func newWorker(c *consumer, tp topicPartition, next int64) *worker {
	w := &worker{c: c, tp: tp, next: next, events: c.events[tp.topic], wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	w.handled.Store(next)
	w.end.Store(next)
	if w.events {
		w.ctx, w.cancel = context.WithCancel(c.ctx)
	} else {
		w.ctx, w.cancel = context.WithoutCancel(c.ctx), func() {}
	}
	return w
}

// signal asks the worker to stop after its batch in flight; a batch of
// events in flight is abandoned.
func (w *worker) signal() {
	w.quitOnce.Do(func() {
		close(w.quit)
		w.cancel()
	})
}

// stop asks the worker to stop after its batch in flight and waits for it.
func (w *worker) stop() {
	w.signal()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused {
		w.paused = false
		w.c.cl.ResumeFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
	}
}

// push queues records, pausing the partition's fetches while the queue is
// long: records the client buffered meanwhile are fetched again on resume.
// The client is paused and resumed under mu, so that its state follows
// paused in the same order: a pause that landed after the resume that
// should follow it would stall the partition with its queue empty.
// (franz-go's pause bookkeeping takes a lock of its own and calls nothing
// back.)
func (w *worker) push(recs []*kgo.Record) {
	w.mu.Lock()
	w.queue = append(w.queue, recs...)
	if !w.paused && len(w.queue) >= 4*w.c.l.opts.MaxBatch {
		w.paused = true
		w.c.cl.PauseFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take returns up to n queued records, waiting for some; nil once the
// worker must stop.
func (w *worker) take(n int) []*kgo.Record {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			k := min(n, len(w.queue))
			recs := w.queue[:k:k]
			w.queue = w.queue[k:]
			if w.paused && len(w.queue) < w.c.l.opts.MaxBatch {
				w.paused = false
				w.c.cl.ResumeFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
			}
			w.mu.Unlock()
			return recs
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-w.quit:
			return nil
		}
	}
}

func (w *worker) stopping() bool {
	select {
	case <-w.quit:
		return true
	default:
		return false
	}
}

// run hands batches until the worker is stopped.
func (w *worker) run() {
	defer close(w.done)
	for !w.stopping() {
		recs := w.take(w.c.l.opts.MaxBatch)
		if recs == nil {
			return
		}
		if err := w.deliver(recs); err != nil {
			w.c.fail(err)
			return
		}
	}
}

// deliver hands recs to handle until it succeeds, resuming from the store's
// offset after each failure. It returns an error only when the store's
// offset moved backwards, which no retry can mend.
func (w *worker) deliver(recs []*kgo.Record) error {
	backoff := 50 * time.Millisecond
	raced := false // the last try lost a race
	for {
		recs = skipBelow(recs, w.next)
		if len(recs) == 0 {
			return nil
		}
		next, err := w.hand(recs)
		if err == nil {
			w.next = next
			w.handled.Store(next)
			w.down.Recovered(w.c.l.log, "kafka: handling batches again", "topic", w.tp.topic, "partition", w.tp.partition)
			return nil
		}
		if w.stopping() {
			return nil
		}
		pause := backoff
		switch {
		case errors.Is(err, plait.ErrStopped), errors.Is(err, context.Canceled):
			// The engine is stopping (a SIGTERM, say), or the partition
			// is being taken away: it stops once Consume returns, and its
			// next owner resumes from the store. Nothing failed.
			w.c.l.log.Debug("kafka: the engine stopped; batch left to the partition's next owner", "topic", w.tp.topic, "partition", w.tp.partition)
		case errors.Is(err, engine.ErrLostRace):
			// Expected now and then, and any client can cause one (the
			// same command id sent to two partitions at once): decided
			// again at once the first time, as the store now holds what
			// won. A race lost again in a row backs off as failures do,
			// so that whatever keeps causing it cannot spin the partition.
			w.c.l.log.Warn("kafka: a batch lost a race with another writer; deciding it again from the store's offset", "topic", w.tp.topic,
				"partition", w.tp.partition, "from", recs[0].Offset, "to", next, "error", err)
			if !raced {
				pause = 0
			}
			raced = true
		default:
			raced = false
			w.down.Failed(w.c.l.log, slog.LevelError, "kafka: handling a batch failed; resuming from the store's offset", err, "topic", w.tp.topic,
				"partition", w.tp.partition, "from", recs[0].Offset, "to", next)
		}
		for {
			select {
			case <-time.After(pause):
			case <-w.quit:
				return nil
			}
			if pause > 0 {
				backoff = min(2*backoff, 5*time.Second)
			}
			pause = backoff
			next, err := w.c.l.opts.Offsets.Offset(w.c.ctx, w.tp.topic, w.tp.partition)
			if err != nil {
				w.down.Failed(w.c.l.log, slog.LevelError, "kafka: reading the committed offset failed", err, "topic", w.tp.topic, "partition", w.tp.partition)
				continue
			}
			if next < w.next {
				return fmt.Errorf("kafka: the store's offset of %s/%d went back from %d to %d", w.tp.topic, w.tp.partition, w.next, next)
			}
			w.next = next
			w.handled.Store(next)
			break
		}
	}
}

// hand hands recs to handle, or to react for an events topic, and returns
// the offset after them.
func (w *worker) hand(recs []*kgo.Record) (next int64, err error) {
	if w.events {
		b := w.eventBatch(recs)
		return b.Offset.Next, w.c.react(w.ctx, b)
	}
	b := w.batch(recs)
	return b.Offset.Next, w.c.handle(w.ctx, b)
}

// eventBatch decodes recs into the batch handed to react. A record that is
// not an event is logged and skipped; the batch's offset still moves past
// it.
func (w *worker) eventBatch(recs []*kgo.Record) engine.EventBatch {
	evs := make([]plait.Event, 0, len(recs))
	var traces []engine.TraceContext
	for _, r := range recs {
		ev, err := decodeEvent(r)
		if err != nil {
			w.c.l.log.Error("kafka: skipped a record that is not an event", "error", err)
			continue
		}
		traces = addTrace(traces, len(evs), r)
		evs = append(evs, ev)
	}
	last := recs[len(recs)-1]
	return engine.EventBatch{Events: evs, Traces: traces, Offset: engine.Offset{Topic: w.tp.topic, Partition: w.tp.partition, Next: last.Offset + 1}}
}

// batch decodes recs into the batch handed to the engine. A record that is
// not a command is logged and skipped; the batch's offset still moves past
// it.
func (w *worker) batch(recs []*kgo.Record) engine.LogBatch {
	cmds := make([]plait.Command, 0, len(recs))
	var traces []engine.TraceContext
	var senders []*plait.User
	for _, r := range recs {
		cmd, err := decodeCommand(r)
		if err != nil {
			w.c.l.log.Error("kafka: skipped a record that is not a command", "error", err)
			continue
		}
		from, err := decodeSender(r)
		if err != nil {
			// Still decided, and given its one outcome: by a sender
			// with no id and no role, whom no rule lets at another's
			// instance.
			w.c.l.log.Error("kafka: a command's sender is unreadable", "command", cmd.ID, "error", err)
			from = &plait.User{}
		}
		if from != nil {
			senders = append(senders, make([]*plait.User, len(cmds)-len(senders))...)
			senders = append(senders, from)
		}
		traces = addTrace(traces, len(cmds), r)
		cmds = append(cmds, cmd)
	}
	last := recs[len(recs)-1]
	return engine.LogBatch{Commands: cmds, Senders: senders, Traces: traces, Offset: engine.Offset{Topic: w.tp.topic, Partition: w.tp.partition, Next: last.Offset + 1}}
}

// addTrace sets the trace context of the batch's item i, decoded from r,
// in traces, which stays nil as long as no item has one.
func addTrace(traces []engine.TraceContext, i int, r *kgo.Record) []engine.TraceContext {
	tc := traceContext(r)
	if tc.Parent == "" {
		return traces
	}
	for len(traces) < i {
		traces = append(traces, engine.TraceContext{})
	}
	return append(traces, tc)
}

// PartitionLags lists the partitions this instance consumes now, each with
// the records it holds that were not handled yet: from the offset handled
// to the partition's end as its last fetch saw it. A partition just
// assigned counts none until its first fetch, and one whose fetches are
// paused, its queue full, counts up to the end its last fetch saw: less
// than it has, when records come faster than they are handled.
func (l *Log) PartitionLags() []engine.PartitionLag {
	l.consumersMu.Lock()
	defer l.consumersMu.Unlock()
	var lags []engine.PartitionLag
	for c := range l.consumers {
		c.mu.Lock()
		for tp, w := range c.parts {
			typ, events := l.topicTypes[tp.topic], c.events[tp.topic]
			lags = append(lags, engine.PartitionLag{Topic: tp.topic, Partition: tp.partition, AggregateType: typ, Events: events,
				Records: max(w.end.Load()-w.handled.Load(), 0)})
		}
		c.mu.Unlock()
	}
	slices.SortFunc(lags, func(a, b engine.PartitionLag) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return lags
}

// skipBelow drops the records before offset next: their effects are
// committed.
func skipBelow(recs []*kgo.Record, next int64) []*kgo.Record {
	for len(recs) > 0 && recs[0].Offset < next {
		recs = recs[1:]
	}
	return recs
}

// fetchFailed logs a failed fetch: with its topic and partition when it is
// one partition's, without when it is the client's or the group's, which
// franz-go reports with no topic.
func (l *Log) fetchFailed(topic string, p int32, err error) {
	if topic == "" {
		l.log.Warn("kafka: fetch failed", "error", err)
		return
	}
	l.log.Warn("kafka: fetch failed", "topic", topic, "partition", p, "error", err)
}
