package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/internal/outage"
	"go.opentelemetry.io/otel/trace"
)

// Offset is a position in one partition of an external command log: Next is
// the offset of the next record to consume, the last one handled plus one.
type Offset struct {
	Topic     string
	Partition int32
	Next      int64
}

// LogBatch is a run of commands consumed from one partition of a command
// log, in log order, and the offset just after them.
type LogBatch struct {
	Commands []plait.Command
	// Senders are the users who submitted the commands, by index in
	// Commands: nil, or one beyond its end, for a command the engine sent
	// (a reactor's), which no access rule limits.
	Senders []*plait.User
	Offset  Offset
	// Traces are the trace contexts the commands were appended with, by
	// index in Commands; one beyond its end, or empty, has none.
	Traces []TraceContext
}

// CommandLog is an external, partitioned command log, such as Kafka, that
// takes the place of the in-process partitions when an application is
// scaled out over several instances.
type CommandLog interface {
	// Append makes cmd durable in the log, in the partition of its aggregate
	// instance, with the user who submitted it (nil for the engine's own
	// commands), and returns once it is. Consume hands the sender back in
	// LogBatch.Senders, so that the access rules are applied again when the
	// command is decided. When the engine traces, ctx holds the span cmd was
	// submitted under, which the log may record with cmd as its
	// TraceContext; otherwise ctx holds no span. An error wrapping
	// ErrUnconfirmed means Append stopped waiting while the record may yet
	// be stored; any other error may mean so too, unless it is one of
	// plait's errors about the command itself.
	Append(ctx context.Context, cmd plait.Command, sender *plait.User) error
	// Consume hands handle the commands of the partitions this instance
	// owns, batch by batch, until ctx ends. It must not hand a partition's
	// next batch before handle returned nil for the previous one; when
	// handle fails, it resumes the partition from the offset the store last
	// committed.
	Consume(ctx context.Context, handle func(ctx context.Context, b LogBatch) error) error
}

// OffsetCommitter is the store side of exactly-once consumption.
type OffsetCommitter interface {
	// CommitWithOffsets is Log.Commit that also records, in the same
	// transaction, the log offsets the batch was consumed up to. An offset
	// lower than the stored one fails the commit: another consumer has taken
	// the partition over. A commit that lost a race with another writer
	// fails with an error wrapping ErrLostRace.
	CommitWithOffsets(ctx context.Context, batch []*Processed, offsets []Offset) error
}

// ErrUnconfirmed means a command log stopped waiting for the
// acknowledgement of a command it sent: the command may be stored all the
// same, and decided, later. The sender is to send it again with the same
// id, which the dedup by command id makes safe: it gets the one outcome.
var ErrUnconfirmed = errors.New("engine: the command log did not acknowledge the command in time; it may be stored yet")

// ErrLostRace means a commit wrote nothing because another writer committed
// first something it writes: the same command id decided in another
// partition, a newer record of an instance, a view swapped for a rebuilt
// copy, a further offset. Scaled out this is expected now and then: the
// batch is read again from the store's offset and decided afresh, where
// dedup and the newer records settle it.
var ErrLostRace = errors.New("engine: another writer committed first")

// ViewFence is what a store offers so that a view can be rebuilt while
// other instances of the application, sharing the store, update it: each
// view has a generation, moved on by every swap of a rebuilt copy
// (FencedCopy), and a batch decided on a view's records commits only if its
// generation has not moved since they were read.
type ViewFence interface {
	// ViewGenerations returns the current generation of each view type.
	ViewGenerations(ctx context.Context, types []string) (map[string]int64, error)
	// CommitFenced is OffsetCommitter.CommitWithOffsets that fails,
	// writing nothing, when a view of fence is no longer at the generation
	// given. It waits for a swap under way.
	CommitFenced(ctx context.Context, batch []*Processed, offsets []Offset, fence map[string]int64) error
}

// FencedCopy is a ViewCopy that a store offering ViewFence swaps behind
// the view's fence.
type FencedCopy interface {
	ViewCopy
	// SwapFenced moves the view's generation on, which waits for the
	// commits of the view under way and holds up those that come; calls
	// finish, whose writes go to the copy in the same transaction; then
	// makes the copy live, and lets the commits go on, those decided
	// before failing.
	SwapFenced(ctx context.Context, finish func(ctx context.Context, write func([]Instance) error) error) error
}

// scaled reports whether the engine consumes an external command log.
func (e *Engine) scaled() bool { return e.opts.CommandLog != nil }

// submitToLog is Submit for a scaled-out engine: the command is durable once
// the log has it, and its outcome comes later, from whichever instance owns
// its partition.
func (e *Engine) submitToLog(ctx context.Context, cmd plait.Command, user plait.User) (Receipt, error) {
	seen := e.outcomesSeen()
	if out, ok, err := e.store.Outcome(ctx, cmd.ID); err != nil {
		return Receipt{Command: cmd}, fmt.Errorf("dedup lookup: %w", err)
	} else if ok {
		return Receipt{Command: out.Command, Outcome: &out, Duplicate: true}, nil
	}
	inst, err := e.store.Load(ctx, cmd.Type, cmd.AggregateID)
	if err != nil {
		return Receipt{Command: cmd}, fmt.Errorf("load %s/%s: %w", cmd.Type, cmd.AggregateID, err)
	}
	if inst.Seq > 0 && !e.defs[cmd.Type].Settings().Access.MaySee(user, inst.Owner) {
		return Receipt{Command: cmd}, &plait.EnvelopeError{Field: "aggregateId", Detail: "you may not act on this instance", Err: plait.ErrForbidden}
	}
	if err := e.appendToLog(ctx, cmd, &user, seen); err != nil {
		return Receipt{Command: cmd}, err
	}
	return Receipt{Command: cmd}, nil
}

// outcomesSeen returns the position of the last outcome seen in the feed.
func (e *Engine) outcomesSeen() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.followed
}

// appendToLog appends cmd and remembers it as pending here until its
// outcome shows in the feed. seen is outcomesSeen from before the caller
// found no outcome for cmd in the store.
func (e *Engine) appendToLog(ctx context.Context, cmd plait.Command, sender *plait.User, seen int64) error {
	e.mu.Lock()
	if e.closing || !e.running {
		e.mu.Unlock()
		return plait.ErrStopped
	}
	a := e.appended[cmd.ID]
	if a != nil {
		a.n++
	} else {
		a = &appendedCmd{cmd: cmd, n: 1}
		e.appended[cmd.ID] = a
	}
	e.corrInflight[cmd.CorrelationID]++
	// Had the outcome of the same id (a duplicate submission, or a
	// reactor's command sent by several instances) been seen since the
	// caller looked, it would not be seen again, and cmd must not stay
	// pending here. No outcome seen since: nothing to fear.
	late := e.followed != seen
	e.mu.Unlock()
	if e.tracing == nil {
		// No span leaves with the command when the engine does not trace.
		ctx = trace.ContextWithSpanContext(ctx, trace.SpanContext{})
	}
	if err := e.opts.CommandLog.Append(ctx, cmd, sender); err != nil {
		e.settleAppended(a, cmd.CorrelationID)
		return fmt.Errorf("append to the command log: %w", err)
	}
	if !late {
		return nil
	}
	if out, ok, err := e.store.Outcome(ctx, cmd.ID); err == nil && ok {
		e.mu.Lock()
		if e.followed >= out.Position {
			e.forgetAppendedLocked(cmd.ID, cmd.CorrelationID)
		}
		e.mu.Unlock()
	}
	return nil
}

// appendedCmd is a command appended here, n times, awaiting its outcome.
type appendedCmd struct {
	cmd plait.Command
	n   int
}

// forgetAppendedLocked forgets every append of command id here: its one
// outcome answers them all. e.mu is held.
func (e *Engine) forgetAppendedLocked(id, correlationID string) {
	a := e.appended[id]
	if a == nil {
		return
	}
	delete(e.appended, id)
	e.corrDoneLocked(correlationID, a.n)
}

// settleAppended forgets one append of a command here, a, whose append
// failed. An append its outcome made forget already (forgetAppendedLocked)
// is not counted out of its correlation twice, nor is a later append of
// the same id counted out in its stead.
func (e *Engine) settleAppended(a *appendedCmd, correlationID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := a.cmd.ID
	if e.appended[id] != a {
		return
	}
	if a.n > 1 {
		a.n--
	} else {
		delete(e.appended, id)
	}
	e.corrDoneLocked(correlationID, 1)
}

// handleLogBatch decides a batch consumed from the command log and commits
// its outcomes together with the consumed offset. It keeps no instance in
// memory between batches: the partition may move to another instance at any
// time, so the store is the only truth.
func (e *Engine) handleLogBatch(ctx context.Context, b LogBatch) (err error) {
	// The partition gate is held from the opening of the commands'
	// personal fields to the commit of what they decided, as the embedded
	// partitions hold it for a batch: Forget waits for the batch, so that
	// no value opened before it is sealed again, under a new key, after it;
	// and a rebuild that stops the world finds no commit in flight.
	e.partitionGate.RLock()
	defer e.partitionGate.RUnlock()
	if e.shred != nil {
		cmds, err := e.shred.openCommands(ctx, b.Commands)
		if err != nil {
			return fmt.Errorf("open the commands: %w", err)
		}
		b.Commands = cmds
	}
	oc := e.store.(OffsetCommitter)
	overlay := map[instKey]Instance{}
	seen := map[string]bool{}
	var procs []*Processed
	var traced []*future // with tracing on, the span of each of procs
	var ct *commitTrace
	defer func() { e.traceLogDone(traced, procs, ct, err) }()
	fence, err := e.viewFence(ctx, b.Commands)
	if err != nil {
		return err
	}
	known := e.knownInLog(ctx, b.Commands)
	loaded, err := e.loadForLog(ctx, b.Commands, known)
	if err != nil {
		return err
	}
	for i, cmd := range b.Commands {
		if seen[cmd.ID] {
			continue
		}
		seen[cmd.ID] = true
		if _, ok := e.defs[cmd.Type]; !ok {
			// Another application's command on a shared topic, or a
			// corrupt record: not ours to decide.
			e.log.Warn("command of an unknown type in the log; skipped", "command", cmd.ID, "type", cmd.Type)
			continue
		}
		if known == nil || known[cmd.ID] {
			if _, ok, err := e.store.Outcome(ctx, cmd.ID); err != nil {
				return fmt.Errorf("dedup lookup: %w", err)
			} else if ok {
				e.metrics.duplicates.Add(1)
				continue
			}
		}
		key := instKey{cmd.Type, cmd.AggregateID}
		inst, ok := overlay[key]
		stored := !ok // not decided in this batch: as the store has it
		if !ok && loaded != nil {
			inst, ok = loaded[key], true
		}
		if !ok {
			var err error
			if inst, err = e.store.Load(ctx, key.typ, key.id); err != nil {
				return fmt.Errorf("load %s/%s: %w", key.typ, key.id, err)
			}
		}
		inst.Type, inst.ID = key.typ, key.id
		if stored {
			if err := e.continueLoggedSeq(ctx, e.defs[key.typ], &inst); err != nil {
				return err
			}
		}
		var proc *Processed
		switch sender := b.sender(i); {
		case sender != nil && inst.Seq > 0 && !e.defs[key.typ].Settings().Access.MaySee(*sender, inst.Owner):
			// The instance was made by another user after the command was
			// taken: the access rules hold when it is decided too.
			proc = forbidden(cmd, *sender)
		case e.tracing != nil:
			f := &future{cmd: cmd}
			e.traceCommand(b.traceContext(i).parent(), f)
			proc = e.decideTraced(f, e.defs[key.typ], inst)
			traced = append(traced, f)
		default:
			proc = decide(e.defs[key.typ], inst, cmd)
		}
		e.decided(e.defs[key.typ], key, proc, overlay)
		procs = append(procs, proc)
	}
	if ct, err = e.commitGrouped(ctx, oc, procs, b.Offset, fence); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	for _, p := range procs {
		e.metrics.outcome(p.Outcome)
	}
	e.nudge.fire()
	return nil
}

// sender is the user who submitted the batch's command i, nil for the
// engine's own.
func (b LogBatch) sender(i int) *plait.User {
	if i < len(b.Senders) {
		return b.Senders[i]
	}
	return nil
}

// forbidden is the outcome of a command whose sender may not act on its
// instance: a rejection, the sender's own, which tells nothing of the
// instance.
func forbidden(cmd plait.Command, sender plait.User) *Processed {
	return &Processed{Outcome: plait.Outcome{
		Command: cmd, Status: plait.StatusRejected, Owner: sender.ID,
		Errors: []plait.FieldError{{Path: "aggregateId", Code: plait.CodeForbidden, Message: "you may not act on this instance"}},
	}}
}

// viewFence returns the generations of the views the batch has commands
// for, read before their records are, when the store fences views; nil
// otherwise.
func (e *Engine) viewFence(ctx context.Context, cmds []plait.Command) (map[string]int64, error) {
	vf, ok := e.store.(ViewFence)
	if !ok {
		return nil, nil
	}
	var views []string
	seen := map[string]bool{}
	for _, c := range cmds {
		if def, ok := e.defs[c.Type]; ok && def.Settings().View && !seen[c.Type] {
			seen[c.Type] = true
			views = append(views, c.Type)
		}
	}
	if len(views) == 0 {
		return nil, nil
	}
	gens, err := vf.ViewGenerations(ctx, views)
	if err != nil {
		return nil, fmt.Errorf("read the views' fence: %w", err)
	}
	return gens, nil
}

// knownInLog returns which commands of a consumed batch have an outcome,
// in one lookup when the store can tell; nil when it cannot, and each
// command is then looked up alone.
func (e *Engine) knownInLog(ctx context.Context, cmds []plait.Command) map[string]bool {
	k, ok := e.store.(commandsKnower)
	if !ok || len(cmds) < 2 {
		return nil
	}
	ids := make([]string, len(cmds))
	for i, c := range cmds {
		ids[i] = c.ID
	}
	known, err := k.KnownCommands(ctx, ids)
	if err != nil {
		e.dedupFailures.Do(func(unlogged int64) {
			e.log.Warn("batched dedup lookup failed; looking up one by one", "commands", len(ids), "error", err, "failures_not_logged", unlogged)
		})
		return nil
	}
	if known == nil {
		known = map[string]bool{}
	}
	return known
}

// logGroup is the group commit of the batches consumed from the command
// log: the partitions' batches that are ready while one commit runs go
// together in the next, one transaction with all their offsets. Partitions
// hold disjoint instances, so their batches commit together as well as
// apart (but for a command id sent to two of them: see apartByCommand),
// and the store serialises commits anyway. The zero value is ready.
type logGroup struct {
	mu      sync.Mutex
	pending []*logCommit
	busy    bool // a commit runs or is about to
}

// logCommit is one partition's batch waiting for the group commit.
type logCommit struct {
	procs  []*Processed
	offset Offset
	fence  map[string]int64 // the generations of the views decided on, if any
	done   chan error
	lead   chan struct{} // this batch's caller is to run the next commit
	trace  *commitTrace  // the span of the commit that served it, when traced
}

// commitGrouped commits a partition's batch with its offset, together with
// whatever other batches are ready. The caller whose batch finds no commit
// running runs one, with every batch pending then, and hands the next one
// to the first batch that came meanwhile: no caller runs more than one
// commit for others. A failed commit fails every batch in it; each
// partition then resumes from the store's offsets. It returns the span of
// the commit that served the batch, nil when tracing is off.
func (e *Engine) commitGrouped(ctx context.Context, oc OffsetCommitter, procs []*Processed, off Offset, fence map[string]int64) (*commitTrace, error) {
	g := &e.logGroup
	c := &logCommit{procs: procs, offset: off, fence: fence, done: make(chan error, 1), lead: make(chan struct{}, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	if !lead {
		select {
		case err := <-c.done:
			return c.trace, err
		case <-c.lead:
		}
	}
	g.mu.Lock()
	group, held := apartByCommand(g.pending)
	g.pending = held
	g.mu.Unlock()
	var all []*Processed
	offsets := make([]Offset, 0, len(group))
	var fences map[string]int64
	for _, gc := range group {
		all = append(all, gc.procs...)
		offsets = append(offsets, gc.offset)
		for t, gen := range gc.fence {
			if fences == nil {
				fences = map[string]int64{}
			}
			if had, ok := fences[t]; ok && had != gen {
				gen = -1 // batches decided on either side of a swap: none passes
			}
			fences[t] = gen
		}
	}
	var ct *commitTrace
	if len(all) > 0 {
		ct = e.traceCommitStart([]*commitReq{{batch: all}})
	}
	start := time.Now()
	var err error
	if vf, ok := oc.(ViewFence); ok && fences != nil {
		err = vf.CommitFenced(ctx, all, offsets, fences)
	} else {
		err = oc.CommitWithOffsets(ctx, all, offsets)
	}
	ct.traceCommitEnd(err)
	e.metrics.observeCommit(len(all), time.Since(start), err)
	for _, gc := range group {
		gc.trace = ct
		gc.done <- err
	}
	g.mu.Lock()
	if len(g.pending) > 0 {
		g.pending[0].lead <- struct{}{}
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	err = <-c.done
	return c.trace, err
}

// apartByCommand splits the pending batches into those that go into one
// commit and those held for the next: a batch holding a command id another
// batch of the commit holds too is held back. A command id is not bound to
// a partition (a client may send one id to two aggregates), and in one
// transaction the two would fail each other each time they were decided
// again; in two, the second finds the first and is a duplicate. The first
// batch, the leader's, always goes.
func apartByCommand(pending []*logCommit) (group, held []*logCommit) {
	ids := map[string]bool{}
	for _, gc := range pending {
		clash := false
		for _, p := range gc.procs {
			if ids[p.Outcome.Command.ID] {
				clash = true
				break
			}
		}
		if clash && len(group) > 0 {
			held = append(held, gc)
			continue
		}
		for _, p := range gc.procs {
			ids[p.Outcome.Command.ID] = true
		}
		group = append(group, gc)
	}
	return group, held
}

// manyLoader is a Log that loads many instance records at once.
type manyLoader interface {
	// LoadMany returns the records of instances ids of type typ, by id;
	// an instance that does not exist is absent.
	LoadMany(ctx context.Context, typ string, ids []string) (map[string]Instance, error)
}

// loadForLog loads the instances of a consumed batch's new commands, one
// query per aggregate type, when the store can; nil when it cannot, and
// each instance is then loaded alone. An instance absent from the result
// does not exist.
func (e *Engine) loadForLog(ctx context.Context, cmds []plait.Command, known map[string]bool) (map[instKey]Instance, error) {
	ml, ok := e.store.(manyLoader)
	if !ok || known == nil {
		return nil, nil
	}
	ids := map[string][]string{}
	seen := map[instKey]bool{}
	for _, c := range cmds {
		key := instKey{c.Type, c.AggregateID}
		if known[c.ID] || seen[key] {
			continue
		}
		seen[key] = true
		ids[c.Type] = append(ids[c.Type], c.AggregateID)
	}
	loaded := make(map[instKey]Instance, len(seen))
	for typ, list := range ids {
		insts, err := ml.LoadMany(ctx, typ, list)
		if err != nil {
			return nil, fmt.Errorf("load %d instances of %s: %w", len(list), typ, err)
		}
		for id, in := range insts {
			loaded[instKey{typ, id}] = in
		}
	}
	return loaded, nil
}

// followInterval is how often a scaled-out engine looks for what other
// instances committed, when its own commits do not wake it first.
const followInterval = 20 * time.Millisecond

// followMaxBackoff caps the wait between reads of the feed while the store
// fails to answer them.
const followMaxBackoff = time.Second

// follow reads the store's feed as it grows, so that this instance's
// subscribers, waiters and settling see what every instance committed.
// Positions are assigned in commit order, so following the head misses
// nothing.
func (e *Engine) follow(ctx context.Context) {
	var sweeping sync.WaitGroup
	sweeping.Go(func() { e.sweepKeys(ctx) })
	defer sweeping.Wait()
	var run []plait.Event // the events since the last outcome
	// While the store fails, the reads back off and the outage is logged
	// when it begins, now and then while it lasts, and when it ends.
	down := outage.Outage{Min: followInterval, Max: followMaxBackoff}
	for ctx.Err() == nil {
		nudged := e.nudge.wait()
		items, err := e.store.ReadFeed(ctx, e.tail.headPos(), 1024)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			msg := "follow the feed: the store does not answer"
			if errors.Is(err, errUpcast) {
				// Skipping the event would drop it from the relay and the
				// waits: the feed stops here, loudly, until a release
				// whose upcasters read it.
				msg = "follow the feed: an event cannot be upcast; the feed waits for an upcaster that reads it"
			}
			wait := down.Failed(e.log, slog.LevelError, msg, err)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			continue
		}
		down.Recovered(e.log, "follow the feed: the store answers again")
		if len(items) > 0 {
			e.tail.append(items)
			for _, it := range items {
				switch {
				case it.Event != nil:
					run = append(run, *it.Event)
				case it.Outcome != nil:
					// A command's events come right before its outcome.
					out := *it.Outcome
					if n := len(run); n > 0 && run[n-1].CausationID == out.Command.ID {
						out.Events = run
					}
					e.outcomeSeen(out)
					run = nil
				}
			}
			e.settle.fire()
			continue
		}
		select {
		case <-nudged:
		case <-time.After(followInterval):
		case <-ctx.Done():
		}
	}
}

// outcomeSeen wakes whoever awaits the outcome and forgets the command as
// pending here. follow gives it the outcome with its events, which the
// feed holds right before it.
func (e *Engine) outcomeSeen(out plait.Outcome) {
	e.mu.Lock()
	ws := e.waiters[out.Command.ID]
	delete(e.waiters, out.Command.ID)
	e.forgetAppendedLocked(out.Command.ID, out.Command.CorrelationID)
	e.followed = max(e.followed, out.Position)
	e.mu.Unlock()
	for _, w := range ws {
		w <- out
	}
}

// send sends one of the engine's own commands (a reactor's) and returns a
// function that waits for its outcome.
//
// page holds, per instance, the last command sent so far of the reactor's
// page (nil: none kept). Embedded, a command may fail while a later one for
// the same instance, decided after it, commits: the page is retried and the
// first would then be applied after the second. So a command fails when the
// page's previous command for its instance did. Scaled out, the command
// log keeps them in order.
func (e *Engine) send(ctx context.Context, cmd plait.Command, page map[instKey]*future) (wait func() error, err error) {
	if !e.scaled() {
		key := instKey{cmd.Type, cmd.AggregateID}
		f, _, err := e.enqueue(ctx, cmd, nil, page[key])
		if err != nil {
			return nil, err
		}
		if page != nil {
			page[key] = f
		}
		return func() error { <-f.done; return f.err }, nil
	}
	ch := make(chan plait.Outcome, 1)
	e.mu.Lock()
	e.waiters[cmd.ID] = append(e.waiters[cmd.ID], ch)
	seen := e.followed
	e.mu.Unlock()
	if _, ok, err := e.store.Outcome(ctx, cmd.ID); err != nil || ok {
		e.dropWaiter(cmd.ID, ch)
		if err != nil {
			return nil, fmt.Errorf("dedup lookup: %w", err)
		}
		return func() error { return nil }, nil
	}
	if err := e.appendToLog(ctx, cmd, nil, seen); err != nil {
		e.dropWaiter(cmd.ID, ch)
		return nil, err
	}
	return func() error {
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			e.dropWaiter(cmd.ID, ch)
			return errors.Join(plait.ErrStopped, ctx.Err())
		}
	}, nil
}

// keySweepInterval is how often a scaled-out engine compares the subjects'
// keys it holds in memory with the shared key store.
const keySweepInterval = time.Second

// sweepKeys drops from memory, every keySweepInterval, the keys of the data
// subjects another instance forgot, so that this instance reads their
// personal values as erased too, within about that interval. It does so
// under the partition gate, as Forget does, so that no batch this instance
// is deciding seals a value it opened under the old key again under a new
// one. It does nothing unless the key store can read many keys at once
// (KeySet, as the PostgreSQL store can).
func (e *Engine) sweepKeys(ctx context.Context) {
	if e.shred == nil {
		return
	}
	ks, ok := e.shred.KeySet()
	if !ok {
		return
	}
	tick := time.NewTicker(keySweepInterval)
	defer tick.Stop()
	// An outage of the key store is logged when it begins, now and then
	// while it lasts, and when it ends; the sweep keeps its pace.
	down := outage.Outage{Min: keySweepInterval, Max: keySweepInterval}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		stale, err := e.shred.Stale(ctx, ks)
		if err != nil {
			if ctx.Err() == nil {
				down.Failed(e.log, slog.LevelWarn, "compare the keys in memory with the key store", err)
			}
			continue
		}
		down.Recovered(e.log, "compare the keys in memory with the key store: the key store answers again")
		if len(stale) == 0 {
			continue
		}
		e.partitionGate.Lock()
		for _, subject := range stale {
			e.shred.Forget(subject)
		}
		e.cacheEpoch.Add(1)
		e.partitionGate.Unlock()
		e.log.Info("data subjects forgotten by another instance", "subjects", len(stale))
	}
}
