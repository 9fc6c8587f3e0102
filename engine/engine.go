package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/internal/outage"
	"go.opentelemetry.io/otel/trace"
)

// Options tune an engine. The zero value is usable.
type Options struct {
	// Partitions is how many single-writer partitions commands are spread
	// over by aggregate id (default 16).
	Partitions int
	// MaxBatch caps the commands a partition decides before it commits
	// (default 256).
	MaxBatch int
	// CacheSize caps the instances each partition keeps in memory (default 4096).
	CacheSize int
	// CacheBytes caps what those instances weigh, roughly their states'
	// bytes (default 8 MiB a partition): past it the partition drops its
	// cache and reads the instances from the store again.
	CacheBytes int
	// TailSize is how many recent feed items stay in memory for subscribers
	// (default 65536).
	TailSize int
	// TailBytes caps what those items weigh, roughly their data's bytes
	// (default 64 MiB): past it the oldest are dropped, and subscribers
	// read them from the store.
	TailBytes int
	// Clock gives the time commands are stamped with (default time.Now).
	Clock func() time.Time
	// NewID makes command ids for commands submitted without one (default ULIDs).
	NewID func() string
	// Logger receives the engine's logs (default slog.Default()).
	Logger *slog.Logger
	// Keys keep the data subjects' keys when the application has personal
	// fields (plait.Personal). When nil, the store keeps them if it can
	// (it implements Keys, as the SQLite store does).
	Keys Keys
	// CommandLog, when set, scales the engine out: commands are appended to
	// this external log and decided by whichever instance consumes their
	// partition, and the store must implement OffsetCommitter. When nil,
	// the engine's own in-process partitions decide (the embedded mode).
	CommandLog CommandLog
	// ReactFromLog, scaled out, has the reactors consume their events
	// from the command log's events topics, through its consumer group,
	// rather than every instance reading the store's feed: each event is
	// then reacted to by the one instance that owns its partition. The
	// CommandLog must be a ReactingLog, and something must publish the
	// events to it (with Kafka, a kafka.Publisher of the application that
	// owns each type).
	ReactFromLog bool
	// TracerProvider, when set, records OpenTelemetry spans that follow
	// each command through decide, commit and every reactor it sets off
	// (see the doc of tracing in trace.go). Nil records nothing, at the
	// cost of a nil check per command.
	TracerProvider trace.TracerProvider
	// EventSources are the logs of record of other applications whose
	// events this one's reactors react to (scaled out, as the lists of a
	// split deployment react to its core's events): a view rebuild reads
	// those events from them. A view fed by an application without one
	// cannot be rebuilt scaled out.
	EventSources []EventSource
}

// EventSource is another application's log of record, read by view
// rebuilds: its store, opened on its schema.
type EventSource struct {
	// Types are the aggregate types whose events it records, those of the
	// other application that this one's reactors subscribe to.
	Types []string
	// Log reads the events; a store that offers FilteredEvents is read by
	// the subscribed events only.
	Log Feed
}

func (o *Options) defaults() {
	if o.Partitions <= 0 {
		o.Partitions = 16
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 4096
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 8 << 20
	}
	if o.TailSize <= 0 {
		o.TailSize = 1 << 16
	}
	if o.TailBytes <= 0 {
		o.TailBytes = 64 << 20
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.NewID == nil {
		o.NewID = func() string { return ulid.Make().String() }
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Engine routes commands to aggregate instances, decides them, commits their
// outcomes through the store with group commit, runs reactors and publishes
// everything committed to subscribers. It knows nothing of HTTP.
type Engine struct {
	app  plait.App
	defs map[string]plait.Definition
	// sealed holds each type's sealed fields: see SealedFields.
	sealed map[string][]string
	store  Store     // the store as the engine reads it: see readPath
	raw    Store     // the store as given
	shred  *shredder // nil without personal fields
	// copiesWarned holds "type.field" of the view fields found holding
	// sealed values they do not declare, each warned about once.
	copiesWarned sync.Map
	tracing      *tracing // nil when tracing is off
	opts         Options
	log          *slog.Logger
	seed         maphash.Seed

	partitions []*partition
	commits    chan *commitReq
	// commitOutage paces the logs of a run of failed commits; the commit
	// goroutine alone uses it.
	commitOutage outage.Outage
	// dedupFailures paces the logs of failed batched dedup lookups, of
	// every partition.
	dedupFailures outage.Pace
	tail          *tail
	reactors      []*reactorRun
	reacting      ReactingLog     // scaled out: the log the reactors consume, when it offers events
	undecided     UndecidedFinder // scaled out: the command log, when it can find a command not decided yet
	lagging       LagReporter     // scaled out: the command log, when it can tell its partitions' lag
	up            *upcasters

	// The gates let a view rebuild stop the world briefly: reactors hold
	// reactorGate for a page, partitions hold partitionGate for a batch.
	reactorGate   sync.RWMutex
	partitionGate sync.RWMutex
	cacheEpoch    atomic.Int64 // bumped when cached instances went stale

	mu           sync.Mutex
	closing      bool
	running      bool
	pending      sync.WaitGroup           // submissions not yet resolved
	inflight     map[string]*future       // by command id
	rebuilding   map[string]bool          // the types being rebuilt or replayed
	corrInflight map[string]int           // commands in flight by correlation id
	corrIdle     map[string]chan struct{} // closed when a correlation's commands in flight are done (see WaitSettled)
	appended     map[string]*appendedCmd  // scaled out: commands appended here, awaiting their outcome
	followed     int64                    // scaled out: the position of the last outcome seen in the feed
	logGroup     logGroup                 // scaled out: the group commit of consumed batches
	nudge        *broadcast               // scaled out: fires after this instance commits
	waiters      map[string][]chan plait.Outcome
	settle       *broadcast // fires when any reactor checkpoint moves
	stopped      chan struct{}
	ready        chan struct{}
	broken       chan struct{} // closed by breakDown
	brokenErr    error         // why, set before broken is closed
	breakOnce    sync.Once
	metrics      Metrics
	durability   durability
}

// breakDown stops the engine for good: it can no longer make commits
// durable. Every commit after it fails with err, and Run returns err.
func (e *Engine) breakDown(err error) {
	e.breakOnce.Do(func() {
		e.brokenErr = err
		close(e.broken)
	})
}

// brokenDown returns the error breakDown was given, nil if it was not called.
func (e *Engine) brokenDown() error {
	select {
	case <-e.broken:
		return e.brokenErr
	default:
		return nil
	}
}

// New makes an engine for app over store. Call Run to start it.
func New(app plait.App, store Store, opts Options) (*Engine, error) {
	if err := app.Validate(); err != nil {
		return nil, err
	}
	opts.defaults()
	for _, w := range app.Warnings() {
		opts.Logger.Warn("the application looks wrong: " + w)
	}
	e := &Engine{
		app:          app,
		defs:         map[string]plait.Definition{},
		sealed:       map[string][]string{},
		raw:          store,
		opts:         opts,
		log:          opts.Logger,
		seed:         maphash.MakeSeed(),
		commits:      make(chan *commitReq, opts.Partitions),
		inflight:     map[string]*future{},
		rebuilding:   map[string]bool{},
		corrInflight: map[string]int{},
		corrIdle:     map[string]chan struct{}{},
		appended:     map[string]*appendedCmd{},
		nudge:        newBroadcast(),
		waiters:      map[string][]chan plait.Outcome{},
		settle:       newBroadcast(),
		durability:   durability{changed: newBroadcast()},
		stopped:      make(chan struct{}),
		ready:        make(chan struct{}),
		broken:       make(chan struct{}),
		tracing:      newTracing(opts.TracerProvider),
		tail:         newTail(0, opts.TailSize), // nothing published until Run reads the head
	}
	e.tail.maxBytes = opts.TailBytes
	e.metrics.byType = map[string]*typeCounts{}
	for _, d := range app.Aggregates {
		e.defs[d.Type()] = d
		e.sealed[d.Type()] = plait.SealedFields(d)
		e.metrics.byType[d.Type()] = &typeCounts{}
	}
	keys := opts.Keys
	if k, ok := store.(Keys); ok && keys == nil {
		keys = k
	}
	sh, err := newShredder(app, keys)
	if err != nil {
		return nil, err
	}
	e.shred = sh
	e.up = newUpcasters(app)
	e.store = wrapStore(store, e.up, sh)
	e.undecided, _ = opts.CommandLog.(UndecidedFinder)
	e.lagging, _ = opts.CommandLog.(LagReporter)
	if opts.ReactFromLog {
		rl, ok := opts.CommandLog.(ReactingLog)
		if !ok {
			return nil, fmt.Errorf("engine: reacting from the command log needs a log that hands events (%T does not)", opts.CommandLog)
		}
		if len(app.Reactors) > 0 {
			e.reacting = rl
			e.opts.CommandLog = withEvents{ReactingLog: rl, react: e.reactToLog}
		}
	}
	if sh != nil && opts.CommandLog != nil {
		e.opts.CommandLog = sealingLog{CommandLog: e.opts.CommandLog, sh: sh}
	}
	if opts.CommandLog != nil {
		if _, ok := store.(OffsetCommitter); !ok {
			return nil, fmt.Errorf("engine: a command log needs a store that commits offsets (%T does not)", store)
		}
	}
	for i := 0; i < opts.Partitions; i++ {
		e.partitions = append(e.partitions, newPartition(e))
	}
	for _, r := range app.Reactors {
		e.reactors = append(e.reactors, &reactorRun{reactor: r, name: ReactorCheckpoint(r.Name())})
	}
	return e, nil
}

// App returns the application the engine runs.
func (e *Engine) App() plait.App { return e.app }

// Definition returns the aggregate type named typ.
func (e *Engine) Definition(typ string) (plait.Definition, bool) {
	d, ok := e.defs[typ]
	return d, ok
}

// Run processes commands and runs the reactors until ctx is done, then stops
// accepting submissions, finishes every submission already accepted and
// returns. It returns an error if the store cannot be read at start.
func (e *Engine) Run(ctx context.Context) error {
	head, err := e.store.Head(ctx)
	if err != nil {
		close(e.stopped)
		return fmt.Errorf("engine: read head: %w", err)
	}
	e.tail.start(head)
	for _, r := range e.reactors {
		pos, err := e.store.Checkpoint(ctx, r.name)
		if err != nil {
			close(e.stopped)
			return fmt.Errorf("engine: read checkpoint %s: %w", r.name, err)
		}
		r.pos.Store(pos)
		// A crash may have come between a page's commands and its
		// checkpoint: until the reactor has read past the checkpoint
		// once, a rebuild must take it as in the middle of a page.
		r.midPage.Store(!e.reactsFromLog())
	}
	// Submissions are accepted before anything that sends commands starts
	// (the reactors, the command log's consumer): a reactor's first command
	// must not find the engine stopped, which would end the reactor for
	// good. The partitions' queues hold what comes before they run.
	e.mu.Lock()
	e.running = true
	e.mu.Unlock()
	inner, stopInner := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	consumed := make(chan error, 1)
	if e.scaled() {
		wg.Add(2)
		go func() { defer wg.Done(); e.follow(inner) }()
		go func() { defer wg.Done(); consumed <- e.opts.CommandLog.Consume(inner, e.handleLogBatch) }()
	} else {
		for _, p := range e.partitions {
			wg.Add(1)
			go func() { defer wg.Done(); p.run(inner) }()
		}
		wg.Add(1)
		go func() { defer wg.Done(); e.commitLoop(inner) }()
	}
	// A reactor stops taking pages when ctx is done but finishes the page
	// it has (its commands' outcomes, its checkpoint) with work. Both end
	// when outcomes can no longer come (the consumer failed, or the log
	// broke down): an idle reactor would otherwise wait for a page that
	// never comes, and Run would never return the failure.
	pages, stopPages := context.WithCancel(ctx)
	defer stopPages()
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var rwg sync.WaitGroup
	if !e.reactsFromLog() { // else the command log hands them their events
		for _, r := range e.reactors {
			rwg.Add(1)
			go func() { defer rwg.Done(); e.runReactor(pages, work, r) }()
		}
	}
	close(e.ready)

	var failed error
	select {
	case <-ctx.Done():
	case failed = <-consumed:
		failed = fmt.Errorf("engine: consume the command log: %w", failed)
		e.log.Error("command log consumer stopped", "error", failed)
		stopPages()
		stopWork()
	case <-e.broken:
		failed = e.brokenErr
		stopPages()
		stopWork()
	}
	e.mu.Lock()
	e.closing = true
	e.mu.Unlock()
	rwg.Wait()
	e.pending.Wait()
	stopInner()
	wg.Wait()
	close(e.stopped)
	return failed
}

// Ready returns a channel closed once Run accepts submissions.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Done returns a channel closed once Run has finished every accepted
// submission and returned.
func (e *Engine) Done() <-chan struct{} { return e.stopped }

// Receipt acknowledges a submitted command: it is durable. Outcome is set
// when the outcome is already known, as it always is in the embedded mode.
type Receipt struct {
	Command   plait.Command
	Outcome   *plait.Outcome
	Duplicate bool // the id had been submitted before; Outcome is the first one
}

// unstorable says why the JSON text data cannot be stored as it is, ""
// if it can. No store holds a NUL character in text, and PostgreSQL's
// JSONB refuses a \u escape of a lone UTF-16 surrogate too, and bytes
// that are not UTF-8: a command holding one would be acknowledged and
// then fail every commit of its group, scaled out for ever. An escape is
// read as JSON reads it: in a\\u0000b the backslash is escaped, and what
// follows is the text u0000.
func unstorable(data []byte) string {
	if !utf8.Valid(data) {
		return "the data is not UTF-8"
	}
	for i := 0; i < len(data); i++ {
		j := bytes.IndexByte(data[i:], '\\')
		if j < 0 || i+j+1 >= len(data) {
			return ""
		}
		i += j
		if data[i+1] != 'u' {
			i++ // an escape of one character, the backslash's own included
			continue
		}
		r, ok := hex4(data[i+2:])
		switch {
		case !ok:
			i++
		case r == 0:
			return "NUL characters (\\u0000) are not allowed"
		case r >= 0xD800 && r <= 0xDBFF:
			if lo, ok := lowSurrogate(data[i+6:]); ok && lo {
				i += 11 // the pair, one character
				continue
			}
			return "a \\u escape of a lone UTF-16 surrogate is not a character"
		case r >= 0xDC00 && r <= 0xDFFF:
			return "a \\u escape of a lone UTF-16 surrogate is not a character"
		default:
			i += 5
		}
	}
	return ""
}

// hex4 reads the four hex digits that begin b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// lowSurrogate reports whether b begins with a \u escape of a low
// surrogate; ok is false if it begins with no \u escape at all.
func lowSurrogate(b []byte) (low, ok bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return false, false
	}
	r, ok := hex4(b[2:])
	return ok && r >= 0xDC00 && r <= 0xDFFF, ok
}

// Normalize checks a command's envelope and fills in what the engine assigns:
// a missing id, the correlation id, the time and the user. It returns an
// *plait.EnvelopeError when the envelope is not a command of the application,
// and changes nothing.
func (e *Engine) Normalize(cmd plait.Command, user plait.User) (plait.Command, error) {
	def, ok := e.defs[cmd.Type]
	if !ok {
		return cmd, &plait.EnvelopeError{Field: "type", Detail: fmt.Sprintf("no aggregate type %q", cmd.Type), Err: plait.ErrUnknownType}
	}
	if cmd.ID == "" {
		cmd.ID = e.opts.NewID()
	}
	if !plait.ValidID(cmd.ID) {
		return cmd, &plait.EnvelopeError{Field: "id", Detail: plait.IDRule, Err: plait.ErrBadID}
	}
	if plait.IsReactionID(cmd.ID) {
		return cmd, &plait.EnvelopeError{Field: "id", Detail: "ids of this shape (r and 32 of 0-9a-v) are reserved for the commands reactors send", Err: plait.ErrBadID}
	}
	if !plait.ValidID(cmd.AggregateID) {
		return cmd, &plait.EnvelopeError{Field: "aggregateId", Detail: plait.IDRule, Err: plait.ErrBadID}
	}
	if why := unstorable(cmd.Data); why != "" {
		return cmd, &plait.EnvelopeError{Field: "data", Detail: why, Err: plait.ErrBadPayload}
	}
	if err := plait.CheckOf(def, cmd); err != nil {
		return cmd, err
	}
	if cmd.ExpectedSeq != nil && *cmd.ExpectedSeq < 0 {
		return cmd, &plait.EnvelopeError{Field: "expectedSeq", Detail: "must not be negative", Err: plait.ErrBadPayload}
	}
	if cmd.CorrelationID == "" {
		cmd.CorrelationID = cmd.ID
	}
	if cmd.At.IsZero() {
		// To the microsecond, all PostgreSQL keeps: a time the application
		// copies into its data (placedAt) then equals the one recorded
		// with the event, in either deployment.
		cmd.At = e.opts.Clock().UTC().Truncate(time.Microsecond)
	}
	if cmd.User == "" {
		cmd.User = user.ID
	}
	return cmd, nil
}

// Submit checks the command's envelope and the user's right to send it,
// then makes it durable and returns its receipt. Envelope problems and
// denied access return errors wrapping the sentinels of package plait, and
// nothing is stored. A command id seen before returns the first outcome.
func (e *Engine) Submit(ctx context.Context, cmd plait.Command, user plait.User) (Receipt, error) {
	cmd, err := e.Normalize(cmd, user)
	if err != nil {
		return Receipt{Command: cmd}, err
	}
	def := e.defs[cmd.Type]
	if def.Settings().View {
		return Receipt{Command: cmd}, &plait.EnvelopeError{Field: "type", Detail: cmd.Type + " is a view, fed only by reactors", Err: plait.ErrForbidden}
	}
	if !def.Settings().Access.MaySend(user, cmd.Name) {
		return Receipt{Command: cmd}, &plait.EnvelopeError{Field: "name", Detail: "you may not send " + cmd.Type + "." + cmd.Name, Err: plait.ErrForbidden}
	}
	if e.scaled() {
		rec, err := e.submitToLog(ctx, cmd, user)
		if err == nil && rec.Outcome != nil && e.shred != nil {
			out, err := e.shred.openOutcome(ctx, *rec.Outcome)
			if err != nil {
				return Receipt{Command: cmd}, err
			}
			rec.Command, rec.Outcome = out.Command, &out
		}
		return rec, err
	}
	f, dup, err := e.enqueue(ctx, cmd, &user, nil)
	if err != nil {
		return Receipt{Command: cmd}, err
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		// The command is still being processed; its outcome stays
		// retrievable by id, but it was not acknowledged to this caller.
		return Receipt{Command: cmd}, ctx.Err()
	}
	if f.err != nil {
		return Receipt{Command: cmd}, f.err
	}
	out, err := e.shred.openOutcome(ctx, f.out)
	if err != nil {
		return Receipt{Command: cmd}, err
	}
	return Receipt{Command: out.Command, Outcome: &out, Duplicate: dup || f.dup}, nil
}

// future is one submission in flight.
type future struct {
	cmd  plait.Command
	user *plait.User // nil for the engine's own commands: no access check
	// after is the submission this one must not overtake: an earlier
	// command of the same reactor page for the same instance. If after
	// fails, so does this one (see partition.process).
	after *future
	gen   int64 // the partition's generation it was decided in
	done  chan struct{}
	out   plait.Outcome
	dup   bool
	err   error
	span  trace.Span // the command's span, nil when not traced
}

// enqueue routes cmd to its partition. A command whose id is already in
// flight shares that submission's future, and dup is true. The span in ctx,
// if any, is the parent of the command's span.
func (e *Engine) enqueue(ctx context.Context, cmd plait.Command, user *plait.User, after *future) (f *future, dup bool, err error) {
	e.mu.Lock()
	if e.closing || !e.running {
		e.mu.Unlock()
		return nil, false, plait.ErrStopped
	}
	if f, ok := e.inflight[cmd.ID]; ok {
		e.mu.Unlock()
		return f, true, nil
	}
	f = &future{cmd: cmd, user: user, after: after, done: make(chan struct{})}
	e.inflight[cmd.ID] = f
	e.corrInflight[cmd.CorrelationID]++
	e.pending.Add(1)
	e.mu.Unlock()
	e.traceCommand(ctx, f)
	e.partitionOf(cmd.Type, cmd.AggregateID).queue <- f
	return f, false, nil
}

// corrDoneLocked counts n commands of the correlation out of flight, and
// wakes whoever waits for it to settle once none is left. e.mu is held.
func (e *Engine) corrDoneLocked(correlationID string, n int) {
	if c := e.corrInflight[correlationID] - n; c > 0 {
		e.corrInflight[correlationID] = c
		return
	}
	delete(e.corrInflight, correlationID)
	if idle, ok := e.corrIdle[correlationID]; ok {
		close(idle)
		delete(e.corrIdle, correlationID)
	}
}

// resolve completes a submission and wakes whoever waits for its outcome.
func (e *Engine) resolve(f *future) {
	e.mu.Lock()
	delete(e.inflight, f.cmd.ID)
	e.corrDoneLocked(f.cmd.CorrelationID, 1)
	ws := e.waiters[f.cmd.ID]
	delete(e.waiters, f.cmd.ID)
	e.mu.Unlock()
	for _, w := range ws {
		if f.err != nil {
			close(w) // no outcome: the command is not recorded (see await)
			continue
		}
		w <- f.out
	}
	switch {
	case f.err != nil:
	case f.dup:
		e.metrics.duplicates.Add(1)
	default:
		e.metrics.outcome(f.out)
	}
	e.traceResolved(f)
	close(f.done)
	e.pending.Done()
}

func (e *Engine) partitionOf(typ, id string) *partition {
	var h maphash.Hash
	h.SetSeed(e.seed)
	h.WriteString(typ)
	h.WriteByte(0)
	h.WriteString(id)
	return e.partitions[h.Sum64()%uint64(len(e.partitions))]
}

// Outcome returns the recorded outcome of command id; ok is false if the
// command is unknown or still pending. Like Load, List and Events, it
// answers only once what it read is durable: it may wait for the log's
// sync in progress.
func (e *Engine) Outcome(ctx context.Context, id string) (plait.Outcome, bool, error) {
	out, ok, err := e.store.Outcome(ctx, id)
	if err = e.durableRead(ctx, err); err != nil || !ok {
		return plait.Outcome{}, false, err
	}
	out, err = e.shred.openOutcome(ctx, out)
	return out, err == nil, err
}

// Pending reports whether command id is acknowledged but has no outcome yet.
func (e *Engine) Pending(id string) bool {
	_, ok := e.pendingCommand(id)
	return ok
}

// pendingCommand returns command id if it is acknowledged here and has no
// outcome yet.
func (e *Engine) pendingCommand(id string) (plait.Command, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f, ok := e.inflight[id]; ok {
		return f.cmd, true
	}
	if a, ok := e.appended[id]; ok {
		return a.cmd, true
	}
	return plait.Command{}, false
}

// Await waits until command id has an outcome and returns it. It returns
// ctx.Err() if ctx ends first, and plait.ErrNotFound if the command is
// neither committed nor in flight, or fails in flight without an outcome.
func (e *Engine) Await(ctx context.Context, id string) (plait.Outcome, error) {
	out, err := e.await(ctx, id)
	if err != nil {
		return out, err
	}
	return e.shred.openOutcome(ctx, out)
}

func (e *Engine) await(ctx context.Context, id string) (plait.Outcome, error) {
	ch := make(chan plait.Outcome, 1)
	e.mu.Lock()
	_, inflight := e.inflight[id]
	inflight = inflight || e.appended[id] != nil
	if inflight || e.scaled() {
		e.waiters[id] = append(e.waiters[id], ch)
	}
	e.mu.Unlock()
	// Scaled out, the outcome may have been seen before the waiter was
	// registered, whether or not the id still counts as pending here.
	if !inflight || e.scaled() {
		out, ok, err := e.storedOutcome(ctx, id)
		if err != nil || ok || !e.scaled() || !e.Pending(id) {
			e.dropWaiter(id, ch)
		}
		if err != nil || ok {
			return out, err
		}
		if !e.Pending(id) {
			// Its outcome may have come between the two looks.
			out, ok, err := e.storedOutcome(ctx, id)
			if err != nil || ok {
				return out, err
			}
			return plait.Outcome{}, plait.ErrNotFound
		}
		if !e.scaled() {
			// Submitted since the first look, it is in flight now: await
			// it as such, with a waiter of its own.
			return e.await(ctx, id)
		}
	}
	select {
	case out, ok := <-ch:
		if !ok {
			return plait.Outcome{}, fmt.Errorf("%w: command %s failed before it was recorded", plait.ErrNotFound, id)
		}
		return out, nil
	case <-ctx.Done():
		e.dropWaiter(id, ch)
		return plait.Outcome{}, ctx.Err()
	}
}

// storedOutcome reads command id's outcome from the store once it is
// durable. The read may see a group written and not yet synced, of a
// command submitted since await looked at what is in flight: unless its
// position is synced already, it waits for the syncs of what it could have
// seen, and answers the breakdown's error if one fails.
func (e *Engine) storedOutcome(ctx context.Context, id string) (plait.Outcome, bool, error) {
	out, ok, err := e.store.Outcome(ctx, id)
	if err != nil || !ok || e.durability.holds(out.Position) {
		return out, ok, err
	}
	if err := e.durableRead(ctx, nil); err != nil {
		return plait.Outcome{}, false, err
	}
	return out, true, nil
}

// settledOutcome says whether out, read from the store by a partition for
// a command not in flight, may be answered without waiting: nil, unless a
// sync has failed and out is not known durable. A group written but not
// synced is visible to reads; its commands stay in flight until it is
// synced, or until its sync fails, which stops the engine first, and a
// command sent again while in flight shares its first submission. So while
// the engine is whole, such an outcome is durable; once it has stopped on
// a failed sync, an outcome after the last position synced may be of a
// group that failure took.
func (e *Engine) settledOutcome(out plait.Outcome) error {
	if e.durability.holds(out.Position) {
		return nil
	}
	return e.brokenDown()
}

func (e *Engine) dropWaiter(id string, ch chan plait.Outcome) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ws := e.waiters[id]
	for i, w := range ws {
		if w == ch {
			e.waiters[id] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(e.waiters[id]) == 0 {
		delete(e.waiters, id)
	}
}

// Events returns an instance's events with seq after after, at most limit,
// once they are durable.
func (e *Engine) Events(ctx context.Context, typ, id string, after int64, limit int) ([]plait.Event, error) {
	evs, err := e.store.Events(ctx, typ, id, after, limit)
	if err = e.durableRead(ctx, err); err != nil {
		return nil, err
	}
	return e.shred.openEvents(ctx, evs)
}

// List runs a list query over the materialized state of one aggregate type,
// once what it may show is durable.
//
// The store compares sealed fields (SealedFields) as the ciphertexts it
// holds; List compares their opened values instead, reading the store's
// pages under the other filters, and a page may then end short (see
// listSealed). A sort on a sealed field orders ciphertexts. So does a
// search of a field the type does not declare plait.Searchable, whose
// keys the store has not: the store may not even have the field in the
// clear (a sealed field of an engine without keys stores it so).
func (e *Engine) List(ctx context.Context, typ string, q ListQuery) (ListPage, error) {
	sealed := e.SealedFields(typ)
	var opened []Filter // the filters List compares, not the store
	for _, f := range q.Filters {
		switch {
		case f.OnID:
		case e.shred != nil && slices.Contains(sealed, f.Field),
			f.Op == "search" && !e.searchable(typ, f.Field):
			opened = append(opened, f)
		}
	}
	if len(opened) > 0 {
		return e.listSealed(ctx, typ, q, opened)
	}
	page, err := e.store.List(ctx, typ, q)
	if err = e.durableRead(ctx, err); err != nil {
		return ListPage{}, err
	}
	return page, e.openPage(ctx, &page)
}

// searchable reports whether type typ declares field searchable, so that
// the store has its keys.
func (e *Engine) searchable(typ, field string) bool {
	d, ok := e.defs[typ]
	return ok && slices.Contains(d.Settings().Searchable, field)
}

// openPage opens the sealed values of a page's items.
func (e *Engine) openPage(ctx context.Context, page *ListPage) error {
	if e.shred == nil {
		return nil
	}
	for i := range page.Items {
		for f, v := range page.Items[i].Fields {
			var err error
			if page.Items[i].Fields[f], err = e.shred.open(ctx, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// Subscriptions lists every subscription of the engine and where it stands.
func (e *Engine) Subscriptions() []Subscription { return e.Stats().Subscriptions }

// Load returns the materialized record of one instance, Seq 0 if none, once
// it is durable.
func (e *Engine) Load(ctx context.Context, typ, id string) (Instance, error) {
	in, err := e.store.Load(ctx, typ, id)
	if err = e.durableRead(ctx, err); err != nil {
		return Instance{}, err
	}
	if e.shred == nil {
		return in, nil
	}
	in.State, err = e.shred.open(ctx, in.State)
	return in, err
}

// errInternal marks an error the application's code caused.
var errInternal = errors.New("internal")

// ReactorCheckpoint is the name of the checkpoint of the reactor named
// reactor in the store (see Checkpoints).
func ReactorCheckpoint(reactor string) string { return "reactor:" + reactor }
