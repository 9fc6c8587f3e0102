package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/log/kafka"
	"github.com/plaithq/plait/store/postgres"
)

// ScaledOptions tune the scaled-out figures of `plait bench --kafka …
// --postgres …`.
type ScaledOptions struct {
	// Options gives Duration, Quick and Progress; Dir and Submitters are
	// not used.
	Options
	// Brokers are the Kafka brokers. The single broker "kfake" starts
	// franz-go's in-process fake broker, spoken to over loopback TCP: a run
	// without a cluster, whose figures say nothing of a real one.
	Brokers []string
	// PostgresURL is the database; each figure gets a fresh schema, dropped
	// at the end.
	PostgresURL string
	// Partitions are the partition counts the command figure is measured
	// with (default 1, 2, 4).
	Partitions []int
	// Submitters is how many goroutines submit commands (default 64).
	Submitters int
}

func (o *ScaledOptions) defaults() {
	o.Options.defaults()
	if o.Quick {
		// A round trip through Kafka and PostgreSQL under load can take
		// longer than the embedded figures' quick window.
		o.Duration = time.Second
	}
	if len(o.Partitions) == 0 {
		o.Partitions = []int{1, 2, 4}
	}
	if o.Submitters <= 0 {
		o.Submitters = 64
	}
}

// totalType is the view of the scaled-out figures: how often each counter
// was added to, fed by totalReactor.
var totalType = plait.NewAggregate[counter]("total",
	plait.AsView[counter](),
	plait.Handle("note", func(s counter, c plait.Cmd[add]) ([]plait.Change, error) {
		return []plait.Change{plait.Emit("noted", c.Data)}, nil
	}),
	plait.Apply("noted", func(s counter, e add) counter { s.Count += e.By; return s }),
)

var totalReactor = plait.NewReactor("total",
	plait.On("counter", "added", func(e plait.Evt[add]) []plait.Dispatch {
		return []plait.Dispatch{plait.Send("total", e.AggregateID, "note", e.Data)}
	}),
)

// scaledApp is App with the total view; with reactor false, the view is
// declared (its topics exist) but nothing feeds it.
func scaledApp(reactor bool) plait.App {
	app := plait.App{Name: "benchscaled", Aggregates: []plait.Definition{counterType, totalType}}
	if reactor {
		app.Reactors = []*plait.Reactor{totalReactor}
	}
	return app
}

// RunScaled measures the scaled-out figures and writes the report to w.
func RunScaled(ctx context.Context, w io.Writer, opts ScaledOptions) error {
	rep, err := MeasureScaled(ctx, opts)
	if err != nil {
		return err
	}
	return rep.Write(w)
}

// MeasureScaled measures, in one run against the same broker and database:
//
//	raw-kafka      a plain franz-go producer, acks=all, one record per
//	               produce, Submitters at once (the baseline)
//	plait-cmd-P    Plait's commands through Kafka and PostgreSQL with P
//	               partitions: Submit (appended, acks=all) then the outcome
//	               awaited (decided, committed with the offset, seen in the
//	               feed), Submitters at once
//	raw-pg-upsert  plain pgx upserts of instance-shaped JSONB rows, 256 per
//	               statement, one writer per partition (the baseline)
//	plait-view     how fast a view catches up with a backlog: a reactor
//	               turns each event into a command for the view, through
//	               Kafka, decided and materialized in PostgreSQL
//	plait-view-topics  the same with the reactor consuming the events topics
//	               through the consumer group (engine.Options.ReactFromLog),
//	               the events published to them as the view catches up
func MeasureScaled(ctx context.Context, opts ScaledOptions) (*Report, error) {
	opts.defaults()
	if len(opts.Brokers) == 1 && opts.Brokers[0] == "kfake" {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return nil, fmt.Errorf("bench: start kfake: %w", err)
		}
		defer c.Close()
		opts.Brokers = c.ListenAddrs()
	}
	pool, err := pgxpool.New(ctx, opts.PostgresURL)
	if err != nil {
		return nil, fmt.Errorf("bench: connect to PostgreSQL: %w", err)
	}
	defer pool.Close()
	s := &scaledRun{opts: opts, pool: pool, run: randomSuffix()}
	defer s.cleanup()
	rep := &Report{Dir: "kafka " + fmt.Sprint(opts.Brokers) + ", postgres", Duration: opts.Duration, CPUs: runtime.NumCPU()}
	progress := s.progress
	top := slices.Max(opts.Partitions)

	progress("raw franz-go producer, %d partitions…", top)
	row, err := s.rawKafka(ctx, top)
	if err != nil {
		return nil, err
	}
	rep.Rows = append(rep.Rows, row)
	var best float64
	for _, p := range opts.Partitions {
		progress("Plait commands through Kafka and PostgreSQL, %d partitions…", p)
		row, err := s.commands(ctx, p)
		if err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, row)
		best = max(best, row.Rate)
	}
	progress("raw pgx batched upserts…")
	if row, err = s.rawUpserts(ctx, top); err != nil {
		return nil, err
	}
	rep.Rows = append(rep.Rows, row)
	// A backlog the view takes about Duration to catch up with, if it
	// keeps pace with the commands.
	backlog := max(200, int(best*opts.Duration.Seconds()))
	progress("Plait view catching up with %d events, %d partitions…", backlog, top)
	if row, err = s.view(ctx, top, backlog); err != nil {
		return nil, err
	}
	rep.Rows = append(rep.Rows, row)
	progress("Plait view catching up with %d events through the events topics, %d partitions…", backlog, top)
	if row, err = s.viewWith(ctx, top, backlog, true); err != nil {
		return nil, err
	}
	rep.Rows = append(rep.Rows, row)
	for _, p := range opts.Partitions[1:] {
		a, _ := rep.Row(fmt.Sprintf("plait-cmd-%d", opts.Partitions[0]))
		b, _ := rep.Row(fmt.Sprintf("plait-cmd-%d", p))
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d → %d partitions: %.2f× the commands/s", opts.Partitions[0], p, b.Rate/a.Rate))
	}
	return rep, nil
}

// scaledRun holds what one MeasureScaled made, to remove it at the end.
type scaledRun struct {
	opts    ScaledOptions
	pool    *pgxpool.Pool
	run     string
	schemas []string
	topics  []string
}

func randomSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// names returns a fresh schema and topic prefix for figure.
func (s *scaledRun) names(figure string) (schema, prefix string) {
	schema = "plait_bench_" + s.run + "_" + figure
	s.schemas = append(s.schemas, schema)
	return schema, "plait-bench-" + s.run + "-" + figure
}

// progress reports a step of the run on opts.Progress.
func (s *scaledRun) progress(format string, args ...any) {
	if s.opts.Progress != nil {
		fmt.Fprintf(s.opts.Progress, format+"\n", args...)
	}
}

func (s *scaledRun) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, schema := range s.schemas {
		if _, err := s.pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			s.progress("could not drop the bench's schema %s: %v", schema, err)
		}
	}
	if len(s.topics) > 0 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.opts.Brokers...))
		if err == nil {
			_, err = kadm.NewClient(cl).DeleteTopics(ctx, s.topics...)
			cl.Close()
		}
		if err != nil {
			s.progress("could not delete the bench's topics %s: %v", strings.Join(s.topics, ", "), err)
		}
	}
}

var quietLog = slog.New(slog.DiscardHandler)

// scaledNode is an engine on Kafka and PostgreSQL.
type scaledNode struct {
	st      *postgres.Store
	log     *kafka.Log
	e       *engine.Engine
	stop    context.CancelFunc
	done    chan error
	pubDone chan struct{} // set when the node publishes its events
}

func (s *scaledRun) start(ctx context.Context, app plait.App, schema, prefix string, partitions int) (*scaledNode, error) {
	return s.startWith(ctx, app, schema, prefix, partitions, false)
}

// startWith is start; with fromTopics, the node also publishes its events
// to Kafka, and its reactors consume them from the events topics through
// the consumer group, as plait serve --kafka runs them.
func (s *scaledRun) startWith(ctx context.Context, app plait.App, schema, prefix string, partitions int, fromTopics bool) (*scaledNode, error) {
	st, err := postgres.Open(ctx, s.opts.PostgresURL, postgres.Options{Schema: schema})
	if err != nil {
		return nil, fmt.Errorf("bench: open the PostgreSQL store: %w", err)
	}
	l, err := kafka.New(ctx, app, kafka.Options{Brokers: s.opts.Brokers, Prefix: prefix, Group: prefix,
		Partitions: int32(partitions), Offsets: st, SessionTimeout: 6 * time.Second, Logger: quietLog})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("bench: open the Kafka log: %w", err)
	}
	s.topics = append(s.topics, l.Topics()...)
	e, err := engine.New(app, st, engine.Options{CommandLog: l, Logger: quietLog, ReactFromLog: fromTopics})
	if err != nil {
		l.Close()
		st.Close()
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	n := &scaledNode{st: st, log: l, e: e, stop: stop, done: make(chan error, 1)}
	go func() { n.done <- e.Run(runCtx) }()
	select {
	case <-e.Ready():
	case err := <-n.done:
		l.Close()
		st.Close()
		return nil, fmt.Errorf("bench: run the engine: %w", err)
	}
	if fromTopics {
		// FeedChanged is ready once the engine is.
		n.pubDone = make(chan struct{})
		p := &kafka.Publisher{Log: l, Feed: st, Changed: e.FeedChanged, Checkpoints: st, Leaser: pgLeases{st}}
		go func() { defer close(n.pubDone); p.Run(runCtx) }()
	}
	return n, nil
}

func (n *scaledNode) shutdown() error {
	n.stop()
	err := <-n.done
	if n.pubDone != nil {
		<-n.pubDone
	}
	n.log.Close()
	n.st.Close()
	return err
}

// pgLeases grants the publisher's lease as a PostgreSQL advisory lock.
type pgLeases struct{ st *postgres.Store }

func (l pgLeases) TryLease(ctx context.Context, name string) (kafka.Lease, bool, error) {
	lease, ok, err := l.st.TryLease(ctx, name)
	if err != nil || !ok {
		return nil, false, err
	}
	return lease, true, nil
}

// benchRecord is a command-shaped record, as Append makes them.
func benchRecord(topic string, rngID int) *kgo.Record {
	cmd := plait.Command{ID: fmt.Sprintf("raw%d", rngID), Type: "counter", AggregateID: fmt.Sprintf("a%d", rngID%rawInstances),
		Name: "add", Data: json.RawMessage(`{"by":1}`), CorrelationID: fmt.Sprintf("raw%d", rngID), User: "bench", At: time.Now().UTC()}
	value, _ := json.Marshal(cmd)
	return &kgo.Record{Topic: topic, Key: []byte(cmd.AggregateID), Value: value}
}

// rawKafka produces command-shaped records with a plain franz-go client.
func (s *scaledRun) rawKafka(ctx context.Context, partitions int) (Row, error) {
	_, prefix := s.names("raw_kafka")
	topic := prefix + ".raw"
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.opts.Brokers...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	if err != nil {
		return Row{}, fmt.Errorf("bench: make a producer: %w", err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return Row{}, fmt.Errorf("bench: create topic %s: %w", topic, err)
	}
	s.topics = append(s.topics, topic)
	l := load{workers: s.opts.Submitters, warmup: s.opts.warmup(), d: s.opts.Duration}
	res, err := l.run(ctx, func(w, i int) error {
		if err := cl.ProduceSync(ctx, benchRecord(topic, w*1_000_000+i)).FirstErr(); err != nil {
			return fmt.Errorf("bench: produce: %w", err)
		}
		return nil
	})
	if err != nil {
		return Row{}, err
	}
	if res.count == 0 {
		return Row{}, fmt.Errorf("raw producer: %w", errNoOps)
	}
	return Row{
		Key:  "raw-kafka",
		Name: fmt.Sprintf("franz-go ProduceSync, acks=all, %d producers, %d partitions", s.opts.Submitters, partitions),
		Rate: res.rate(1), Unit: "records/s", Count: res.count, P50: res.p50, P99: res.p99,
	}, nil
}

// commands submits commands and awaits each one's outcome.
func (s *scaledRun) commands(ctx context.Context, partitions int) (Row, error) {
	schema, prefix := s.names(fmt.Sprintf("cmd%d", partitions))
	n, err := s.start(ctx, scaledApp(false), schema, prefix, partitions)
	if err != nil {
		return Row{}, err
	}
	// The consumer group assigns the partitions before the load starts.
	if err := warm(ctx, n); err != nil {
		n.shutdown()
		return Row{}, err
	}
	rngs := newRands(s.opts.Submitters, uint64(partitions))
	l := load{workers: s.opts.Submitters, warmup: s.opts.warmup(), d: s.opts.Duration}
	res, err := l.run(ctx, func(w, _ int) error { return submitAwait(ctx, n.e, addCommand(rngs[w])) })
	if serr := n.shutdown(); err == nil {
		err = serr
	}
	if err != nil {
		return Row{}, err
	}
	if res.count == 0 {
		return Row{}, fmt.Errorf("commands with %d partitions: %w", partitions, errNoOps)
	}
	return Row{
		Key:  fmt.Sprintf("plait-cmd-%d", partitions),
		Name: fmt.Sprintf("Submit (acks=all) and await the outcome (decided, committed in PostgreSQL), %d submitters, %d partitions", s.opts.Submitters, partitions),
		Rate: res.rate(1), Unit: "commands/s", Count: res.count, P50: res.p50, P99: res.p99, Baselines: []string{"raw-kafka"},
	}, nil
}

// warm waits until a first command gets its outcome.
func warm(ctx context.Context, n *scaledNode) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := submitAwait(ctx, n.e, plait.Command{Type: "counter", AggregateID: "warm", Name: "add", Data: json.RawMessage(`{"by":1}`)}); err != nil {
		return fmt.Errorf("bench: the first command: %w", err)
	}
	return nil
}

func submitAwait(ctx context.Context, e *engine.Engine, cmd plait.Command) error {
	r, err := e.Submit(ctx, cmd, benchUser)
	if err != nil {
		return fmt.Errorf("bench: submit: %w", err)
	}
	out := r.Outcome
	if out == nil {
		o, err := e.Await(ctx, r.Command.ID)
		if err != nil {
			return fmt.Errorf("bench: await %s: %w", r.Command.ID, err)
		}
		out = &o
	}
	if out.Status != plait.StatusAccepted {
		return fmt.Errorf("bench: outcome %+v, want accepted", out)
	}
	return nil
}

// rawUpserts upserts instance-shaped rows with plain pgx, 256 per
// statement, one writer per partition, each on ids of its own.
func (s *scaledRun) rawUpserts(ctx context.Context, writers int) (Row, error) {
	schema, _ := s.names("raw_pg")
	table := pgx.Identifier{schema, "instances"}.Sanitize()
	if _, err := s.pool.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()+`;
		CREATE TABLE `+table+` (type text COLLATE "C" NOT NULL, id text COLLATE "C" NOT NULL, seq bigint NOT NULL,
			state jsonb NOT NULL, lineage jsonb, owner text NOT NULL, updated_at timestamptz NOT NULL, PRIMARY KEY (type, id))`); err != nil {
		return Row{}, fmt.Errorf("bench: create the upsert table: %w", err)
	}
	const rows = 256
	upsert := `INSERT INTO ` + table + ` (type, id, seq, state, lineage, owner, updated_at)
		SELECT 'total', id, 1, state, NULL, 'bench', now() FROM unnest($1::text[], $2::jsonb[]) AS u(id, state)
		ON CONFLICT (type, id) DO UPDATE SET seq = ` + table + `.seq + 1, state = EXCLUDED.state, updated_at = EXCLUDED.updated_at`
	rngs := newRands(writers, 99)
	l := load{workers: writers, warmup: s.opts.warmup(), d: s.opts.Duration}
	res, err := l.run(ctx, func(w, _ int) error {
		ids := make([]string, rows)
		states := make([]string, rows)
		seen := map[int]bool{}
		for i := range rows {
			// Each writer has its own ids, as each partition has its own
			// instances; one row per id per statement, as ON CONFLICT
			// requires.
			k := rngs[w].IntN(rawInstances/writers)*writers + w
			for seen[k] {
				k = rngs[w].IntN(rawInstances/writers)*writers + w
			}
			seen[k] = true
			ids[i] = fmt.Sprintf("a%d", k)
			states[i] = fmt.Sprintf(`{"count":%d}`, k)
		}
		if _, err := s.pool.Exec(ctx, upsert, ids, states); err != nil {
			return fmt.Errorf("bench: upsert: %w", err)
		}
		return nil
	})
	if err != nil {
		return Row{}, err
	}
	if res.count == 0 {
		return Row{}, fmt.Errorf("raw upserts: %w", errNoOps)
	}
	return Row{
		Key:  "raw-pg-upsert",
		Name: fmt.Sprintf("pgx upsert of %d JSONB instance rows per statement, %d writers", rows, writers),
		Rate: res.rate(rows), Unit: "rows/s", Count: res.count * rows, P50: res.p50, P99: res.p99,
	}, nil
}

// view commits a backlog of events without the reactor, then starts the
// application with it and measures how fast the view catches up.
func (s *scaledRun) view(ctx context.Context, partitions, backlog int) (Row, error) {
	return s.viewWith(ctx, partitions, backlog, false)
}

// viewWith is view; with fromTopics, the reactor consumes the events from
// the events topics through the consumer group, once the publisher put
// them there, as plait serve --kafka runs it.
func (s *scaledRun) viewWith(ctx context.Context, partitions, backlog int, fromTopics bool) (Row, error) {
	figure := "view"
	if fromTopics {
		figure = "viewtopics"
	}
	schema, prefix := s.names(figure)
	n, err := s.start(ctx, scaledApp(false), schema, prefix, partitions)
	if err != nil {
		return Row{}, err
	}
	rngs := newRands(s.opts.Submitters, 7)
	work := make(chan struct{}, backlog)
	for range backlog {
		work <- struct{}{}
	}
	close(work)
	errs := make(chan error, s.opts.Submitters)
	for w := range s.opts.Submitters {
		go func() {
			for range work {
				if err := submitAwait(ctx, n.e, addCommand(rngs[w])); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range s.opts.Submitters {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	head := n.e.Head()
	if serr := n.shutdown(); err == nil {
		err = serr
	}
	if err != nil {
		return Row{}, err
	}

	began := time.Now()
	n, err = s.startWith(ctx, scaledApp(true), schema, prefix, partitions, fromTopics)
	if err != nil {
		return Row{}, err
	}
	defer n.shutdown()
	deadline := began.Add(10*s.opts.Duration + time.Minute)
	for {
		at, of, err := viewProgress(ctx, n, head, backlog, fromTopics)
		if err != nil {
			return Row{}, err
		}
		if at >= of {
			break
		}
		if time.Now().After(deadline) {
			return Row{}, fmt.Errorf("bench: the view is at %d of %d after %s", at, of, time.Since(began).Round(time.Millisecond))
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(began)
	key, path := "plait-view", "reactor → Kafka → decided → PostgreSQL"
	if fromTopics {
		key, path = "plait-view-topics", "published → events topic → consumer group → reactor → Kafka → decided → PostgreSQL"
	}
	return Row{
		Key:  key,
		Name: fmt.Sprintf("view catching up with %d events (%s), %d partitions, from start", backlog, path, partitions),
		Rate: float64(backlog) / elapsed.Seconds(), Unit: "updates/s", Count: backlog, Baselines: []string{"raw-pg-upsert"},
	}, nil
}

// viewProgress tells how far the view's reactor is: at of. Reading the
// feed, its checkpoint against the head; reading the events topics, the
// events handled (the offsets committed to the store, one per event)
// against the backlog.
func viewProgress(ctx context.Context, n *scaledNode, head int64, backlog int, fromTopics bool) (at, of int64, err error) {
	if !fromTopics {
		pos, err := n.st.Checkpoint(ctx, engine.ReactorCheckpoint(totalReactor.Name()))
		if err != nil {
			return 0, head, fmt.Errorf("bench: read the view's checkpoint: %w", err)
		}
		return pos, head, nil
	}
	offs, err := n.st.Offsets(ctx, n.log.EventsTopic(counterType.Type()))
	if err != nil {
		return 0, int64(backlog), fmt.Errorf("bench: read the view's offsets: %w", err)
	}
	for _, next := range offs {
		at += next
	}
	return at, int64(backlog), nil
}
