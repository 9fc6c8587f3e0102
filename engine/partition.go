package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"

	"github.com/plaithq/plait"
)

// partition is a single writer: it decides the commands of the instances
// that hash to it, one at a time and in order, and keeps their records
// cached. Different partitions decide in parallel.
//
// A partition is pipelined: once it has handed a batch to the group commit,
// it decides the next batch against the records the first one will commit,
// while that commit runs, and a completer goroutine resolves each batch's
// submissions, in order, when its commit is done. Commands that arrive
// during a commit are then ready for the very next one, so batches grow
// with the load instead of waiting a commit out. Should a commit fail, every
// batch decided on top of it fails too: the commit loop bumps the
// partition's generation, refuses the batches stamped with an older one, and
// the partition drops its cache before it decides again.
type partition struct {
	e     *Engine
	queue chan *future
	cache map[instKey]cached
	// cacheBytes is what the cached instances weigh (see instanceBytes).
	cacheBytes int
	// handed numbers the batches handed to the group commit, from 1;
	// completed is the number of the last one whose commit is done (they
	// complete in order), so that a cached record of a later one is known
	// to be in no store yet.
	handed    int64
	completed atomic.Int64
	epoch     int64 // the engine's cacheEpoch the cache is valid for

	gen         atomic.Int64 // bumped by the commit loop when a batch fails
	cacheGen    int64        // the gen the cache is valid for
	completions chan completion
}

// completion is a batch handed to the group commit, for the completer.
type completion struct {
	req     *commitReq
	waiting []*future // the submissions of req.batch, in the same order
	batch   int64     // the batch's number (see partition.handed)
}

// cached is an instance's record in a partition's cache, with the number
// of the batch that decided it.
type cached struct {
	inst  Instance
	batch int64
}

// maxInflight bounds the batches of one partition in the group commit.
const maxInflight = 8

type instKey struct{ typ, id string }

func newPartition(e *Engine) *partition {
	return &partition{
		e: e, queue: make(chan *future, 1024), cache: map[instKey]cached{},
		completions: make(chan completion, maxInflight),
	}
}

func (p *partition) run(ctx context.Context) {
	completer := make(chan struct{})
	go func() { defer close(completer); p.complete(ctx) }()
	defer func() { <-completer }()
	max := p.e.opts.MaxBatch
	for {
		var first *future
		select {
		case first = <-p.queue:
		case <-ctx.Done():
			return
		}
		batch := []*future{first}
	drain:
		for len(batch) < max {
			select {
			case f := <-p.queue:
				batch = append(batch, f)
			default:
				break drain
			}
		}
		// The gate is held until the batch is committed (the completer
		// releases it when handle hands the batch over), so a rebuild that
		// stops the world finds no commit in flight.
		p.e.partitionGate.RLock()
		if epoch := p.e.cacheEpoch.Load(); epoch != p.epoch {
			clear(p.cache)
			p.cacheBytes = 0
			p.epoch = epoch
		}
		gen := p.gen.Load()
		if gen != p.cacheGen {
			// A batch failed to commit: the cache holds records that were
			// never written. Every batch before it is in the store, every
			// batch after it will be refused, so the store is the truth.
			clear(p.cache)
			p.cacheBytes = 0
			p.cacheGen = gen
		}
		if !p.handle(ctx, batch, gen) {
			p.e.partitionGate.RUnlock()
		}
	}
}

// handle decides a batch in order against the records as the batches before
// it leave them, resolves at once the submissions that need no commit, and
// hands the rest to the group commit and the completer. It reports whether
// it handed a batch over, and with it the partition gate.
func (p *partition) handle(ctx context.Context, batch []*future, gen int64) bool {
	overlay := map[instKey]Instance{}
	var procs []*Processed
	var waiting []*future
	known := p.known(ctx, batch)
	for _, f := range batch {
		f.gen = gen
		proc, err := p.process(ctx, f, overlay, known)
		switch {
		case err != nil:
			f.err = err
			p.e.resolve(f)
		case proc == nil: // duplicate, resolved with its first outcome
			p.e.resolve(f)
		default:
			procs = append(procs, proc)
			waiting = append(waiting, f)
		}
	}
	if len(procs) == 0 {
		return false
	}
	num := p.keep(overlay)
	req := &commitReq{batch: procs, done: make(chan error, 1), part: p, gen: gen}
	select {
	case p.e.commits <- req:
	case <-ctx.Done():
		req.done <- plait.ErrStopped
	}
	p.completions <- completion{req: req, waiting: waiting, batch: num}
	return true
}

// complete resolves the submissions of each batch handed to the group
// commit, in order, once its commit is done, and releases the partition
// gate the batch held.
func (p *partition) complete(ctx context.Context) {
	for {
		var c completion
		select {
		case c = <-p.completions:
		case <-ctx.Done():
			return
		}
		err := <-c.req.done
		p.completed.Store(c.batch)
		p.e.traceCommitted(c.req, c.waiting)
		for i, f := range c.waiting {
			if err != nil {
				f.err = fmt.Errorf("commit: %w", err)
			} else {
				f.out = c.req.batch[i].Outcome
			}
			p.e.resolve(f)
		}
		p.e.partitionGate.RUnlock()
	}
}

// keep caches the records a batch decided, and numbers the batch for the
// group commit. A cache that would hold more than CacheSize instances, or
// weigh more than CacheBytes, first drops the records the store has: those
// of the batches whose commit is done. (Without the byte cap, large states
// would stay in memory until as many instances as the cache holds pushed
// them out.) The records of the batches still committing stay, as the store
// does not have them yet: so a cache over its caps does not wait for a
// commit, and weighs at most what the batches in flight decided besides.
func (p *partition) keep(overlay map[instKey]Instance) int64 {
	p.handed++
	growth := p.growth(overlay)
	if len(p.cache)+len(overlay) > p.e.opts.CacheSize || p.cacheBytes+growth > p.e.opts.CacheBytes {
		done := p.completed.Load()
		for k, c := range p.cache {
			if c.batch <= done {
				delete(p.cache, k)
				p.cacheBytes -= instanceBytes(c.inst)
			}
		}
		growth = p.growth(overlay)
	}
	p.cacheBytes += growth
	for k, inst := range overlay {
		p.cache[k] = cached{inst: inst, batch: p.handed}
	}
	return p.handed
}

// growth is how much the cache's weight changes once overlay is copied in.
func (p *partition) growth(overlay map[instKey]Instance) int {
	n := 0
	for k, inst := range overlay {
		n += instanceBytes(inst)
		if old, ok := p.cache[k]; ok {
			n -= instanceBytes(old.inst)
		}
	}
	return n
}

// instanceOverhead approximates what a cached instance weighs besides its
// state: the map entry, the struct, its type, id and owner.
const instanceOverhead = 256

// instanceBytes approximates the memory a cached instance holds: its
// state's bytes, instanceOverhead, and as much again per lineage entry.
func instanceBytes(inst Instance) int {
	return len(inst.State) + instanceOverhead*(1+len(inst.Lineage))
}

// commandsKnower is a Log that can tell at once which of many command ids
// have an outcome. The partition asks it once per batch, so a batch of new
// commands costs at most one dedup read instead of one per command (and
// none with a store that knows which ids are certainly new).
type commandsKnower interface {
	// KnownCommands returns the ids among ids that have a recorded outcome.
	KnownCommands(ctx context.Context, ids []string) (map[string]bool, error)
}

// known returns the ids of the batch that have an outcome, so that process
// reads the outcome of those only. It returns nil when the store cannot
// tell or the read failed: process then looks each command up.
func (p *partition) known(ctx context.Context, batch []*future) map[string]bool {
	k, ok := p.e.store.(commandsKnower)
	if !ok {
		return nil
	}
	ids := make([]string, len(batch))
	for i, f := range batch {
		ids[i] = f.cmd.ID
	}
	known, err := k.KnownCommands(ctx, ids)
	if err != nil {
		p.e.dedupFailures.Do(func(unlogged int64) {
			p.e.log.Warn("batched dedup lookup failed; looking up one by one", "commands", len(ids), "error", err, "failures_not_logged", unlogged)
		})
		return nil
	}
	if known == nil {
		known = map[string]bool{}
	}
	return known
}

// process decides one command against its instance as the batch left it. It
// returns nil and sets f.out for a duplicate, and an error for a submission
// that must not be acknowledged.
func (p *partition) process(ctx context.Context, f *future, overlay map[instKey]Instance, known map[string]bool) (*Processed, error) {
	// The command it must not overtake was decided in this generation:
	// resolved, in this batch, or in a batch still committing whose failure
	// refuses this one's batch too. Or a batch has failed since it was
	// decided: then its answer is settled (committed before that failure,
	// or refused with it) and comes without waiting on this partition.
	if a := f.after; a != nil {
		f.after = nil
		if a.gen != f.gen {
			<-a.done
		}
		select {
		case <-a.done:
			if a.err != nil {
				return nil, fmt.Errorf("an earlier command for %s/%s failed: %w", f.cmd.Type, f.cmd.AggregateID, a.err)
			}
		default:
		}
	}
	if known == nil || known[f.cmd.ID] {
		out, ok, err := p.e.store.Outcome(ctx, f.cmd.ID)
		if err != nil {
			return nil, fmt.Errorf("dedup lookup: %w", err)
		}
		if ok {
			// A command in flight shares its first submission; this one
			// is not, so its outcome is durable unless a sync failed.
			if err := p.e.settledOutcome(out); err != nil {
				return nil, err
			}
			f.out, f.dup = out, true
			return nil, nil
		}
	}
	key := instKey{f.cmd.Type, f.cmd.AggregateID}
	inst, ok := overlay[key]
	if !ok {
		var c cached
		c, ok = p.cache[key]
		inst = c.inst
	}
	def := p.e.defs[key.typ]
	if !ok {
		var err error
		if inst, err = p.e.loadForDecide(ctx, def, key); err != nil {
			return nil, err
		}
	}
	if f.user != nil && inst.Seq > 0 && !def.Settings().Access.MaySee(*f.user, inst.Owner) {
		return nil, &plait.EnvelopeError{Field: "aggregateId", Detail: "you may not act on this instance", Err: plait.ErrForbidden}
	}
	proc := p.e.decideTraced(f, def, inst)
	p.e.decided(def, key, proc, overlay)
	return proc, nil
}

// decided takes a decision into the batch's overlay of records, warns of a
// view's undeclared sealed copies, and logs a failure of the application's
// code.
func (e *Engine) decided(def plait.Definition, key instKey, proc *Processed, overlay map[instKey]Instance) {
	if proc.Instance != nil {
		overlay[key] = *proc.Instance
		e.warnUndeclaredCopies(def, proc.Instance.State)
	}
	if proc.Outcome.Status == plait.StatusRejected && hasCode(proc.Outcome.Errors, plait.CodeInternal) {
		cmd := proc.Outcome.Command
		e.log.Error("command failed in the application's code",
			"command", cmd.ID, "correlation", cmd.CorrelationID, "type", cmd.Type,
			"name", cmd.Name, "error", proc.Outcome.Errors[0].Message)
	}
}

func hasCode(errs []plait.FieldError, code string) bool {
	for _, e := range errs {
		if e.Code == code {
			return true
		}
	}
	return false
}

// SeqLog is a Log that can tell the seq of an instance's last event.
type SeqLog interface {
	// LastSeq returns the seq of the instance's last event in the log, 0
	// if it has none.
	LastSeq(ctx context.Context, typ, id string) (int64, error)
}

// loadForDecide loads the record a command is decided against. A view's
// instance may have events in the log and no record: a rebuild whose new
// logic does not make it dropped it. Made again, it goes on from its last
// seq in the log, whose seqs are never taken twice.
func (e *Engine) loadForDecide(ctx context.Context, def plait.Definition, key instKey) (Instance, error) {
	inst, err := e.store.Load(ctx, key.typ, key.id)
	if err != nil {
		return inst, fmt.Errorf("load %s/%s: %w", key.typ, key.id, err)
	}
	inst.Type, inst.ID = key.typ, key.id
	return inst, e.continueLoggedSeq(ctx, def, &inst)
}

// continueLoggedSeq sets the seq of a view's instance loaded without a
// record to that of its last event in the log: see loadForDecide.
func (e *Engine) continueLoggedSeq(ctx context.Context, def plait.Definition, inst *Instance) error {
	sl, ok := e.raw.(SeqLog)
	if !ok || inst.Seq != 0 || !def.Settings().View {
		return nil
	}
	seq, err := sl.LastSeq(ctx, inst.Type, inst.ID)
	if err != nil {
		return fmt.Errorf("load %s/%s: %w", inst.Type, inst.ID, err)
	}
	inst.Seq = seq
	return nil
}

// decide is the pure core: the command against the instance gives either the
// events and the new record, or a rejection. A panic or error in the
// application's code becomes a rejection with code internal.
func decide(def plait.Definition, inst Instance, cmd plait.Command) *Processed {
	reject := func(errs ...plait.FieldError) *Processed {
		return &Processed{Outcome: plait.Outcome{Command: cmd, Status: plait.StatusRejected, Errors: errs, Owner: inst.Owner}}
	}
	if rej := plait.CheckExpectedSeq(cmd, inst.Seq); rej != nil {
		return reject(rej.Errors...)
	}
	changes, err := safeDecide(def, plait.Current{Seq: inst.Seq, State: inst.State, Lineage: inst.Lineage}, cmd)
	if err != nil {
		var rej *plait.Rejection
		if errors.As(err, &rej) && len(rej.Errors) > 0 {
			return reject(rej.Errors...)
		}
		return reject(plait.FieldError{Code: plait.CodeInternal, Message: err.Error()})
	}
	if len(changes) == 0 {
		return &Processed{Outcome: plait.Outcome{Command: cmd, Status: plait.StatusAccepted, Owner: inst.Owner}}
	}
	next := Instance{
		Type: inst.Type, ID: inst.ID, Seq: inst.Seq, State: inst.State,
		Lineage: maps.Clone(inst.Lineage), Owner: inst.Owner, UpdatedAt: cmd.At,
	}
	if next.Seq == 0 && next.Owner == "" {
		next.Owner = cmd.User // the owner is whoever sent the first command
	}
	events := make([]plait.Event, len(changes))
	for i, c := range changes {
		state, err := safeEvolve(def, next.State, c.Name, c.Data)
		if err != nil {
			return reject(plait.FieldError{Code: plait.CodeInternal, Message: err.Error()})
		}
		next.State = state
		next.Seq++
		events[i] = plait.Event{
			ID: plait.EventID(cmd.ID, i), Type: cmd.Type, AggregateID: cmd.AggregateID,
			Seq: next.Seq, Name: c.Name, Version: eventVersion(def, c.Name), Data: c.Data,
			CorrelationID: cmd.CorrelationID, CausationID: cmd.ID, User: cmd.User, At: cmd.At,
			Lineage: c.Lineage,
		}
		if len(c.Lineage) > 0 && next.Lineage == nil {
			next.Lineage = map[string]plait.Lineage{}
		}
		maps.Copy(next.Lineage, c.Lineage)
	}
	next.Owner = def.Settings().Access.Owner(next.State, next.Owner)
	if errs := oversizedIndexes(def, next.State); len(errs) > 0 {
		return reject(errs...)
	}
	// The command's data was checked at the door; what the handlers made
	// of it is checked here, as every store can keep it (PostgreSQL's
	// JSONB refuses a NUL): a decision that cannot be stored would fail
	// its commit and, scaled out, every commit of its partition after it.
	for _, ev := range events {
		if why := unstorable(ev.Data); why != "" {
			return reject(plait.FieldError{Code: plait.CodeInternal, Message: fmt.Sprintf("%s emitted event %q whose data cannot be stored: %s", cmd.Type, ev.Name, why)})
		}
	}
	if why := unstorable(next.State); why != "" {
		return reject(plait.FieldError{Code: plait.CodeInternal, Message: fmt.Sprintf("the new state of %s %s cannot be stored: %s", cmd.Type, cmd.AggregateID, why)})
	}
	p := &Processed{
		Outcome:  plait.Outcome{Command: cmd, Status: plait.StatusAccepted, Events: events, Owner: next.Owner},
		Instance: &next,
	}
	if inst.Seq > 0 && next.Owner != inst.Owner {
		p.OwnerMoved, p.FormerOwner = true, inst.Owner
	}
	return p
}

// MaxIndexedValue is the most bytes a field the type lists in
// plait.Indexed may hold in an instance's state, JSON-encoded. PostgreSQL
// refuses an index entry of more than about 2.7 KB, which would fail the
// instance's commit and, scaled out, every commit of its partition after
// it; so a command whose new state holds more is rejected with
// plait.CodeTooLarge, in every deployment alike.
const MaxIndexedValue = 2048

// oversizedIndexes reports the indexed fields of state over
// MaxIndexedValue; a state no larger than that has none, and is not read.
func oversizedIndexes(def plait.Definition, state json.RawMessage) []plait.FieldError {
	fields := def.Settings().Indexes
	if len(fields) == 0 || len(state) <= MaxIndexedValue {
		return nil
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(state, &top) != nil {
		return nil
	}
	var errs []plait.FieldError
	for _, f := range fields {
		if v := jsonAt(top, strings.Split(f, ".")); len(v) > MaxIndexedValue {
			errs = append(errs, plait.FieldError{Path: f, Code: plait.CodeTooLarge,
				Message: fmt.Sprintf("%s is listed and sorted on, and holds at most %d bytes; it would hold %d", f, MaxIndexedValue, len(v))})
		}
	}
	return errs
}

// jsonAt returns the value at path in the decoded JSON object obj, nil if
// none.
func jsonAt(obj map[string]json.RawMessage, path []string) json.RawMessage {
	v := obj[path[0]]
	for _, key := range path[1:] {
		var inner map[string]json.RawMessage
		if json.Unmarshal(v, &inner) != nil {
			return nil
		}
		v = inner[key]
	}
	return v
}

func safeDecide(def plait.Definition, current plait.Current, cmd plait.Command) (changes []plait.Change, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s.%s panicked: %v", errInternal, cmd.Type, cmd.Name, r)
		}
	}()
	return def.Decide(current, cmd)
}

func safeEvolve(def plait.Definition, state []byte, name string, data []byte) (next []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: evolve %s.%s panicked: %v", errInternal, def.Type(), name, r)
		}
	}()
	return def.Evolve(state, name, data)
}
