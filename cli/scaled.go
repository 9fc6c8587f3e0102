package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/bench"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/log/kafka"
	"github.com/plaithq/plait/store/postgres"
	"github.com/prometheus/client_golang/prometheus"
)

// scaledFlags choose the scaled-out deployment: Kafka and PostgreSQL.
type scaledFlags struct {
	kafka          string
	postgres       string
	schema         string
	eventsSchemas  string
	topicPrefix    string
	group          string
	partitions     int
	replication    int
	retention      time.Duration
	sessionTimeout time.Duration
	takeover       time.Duration // see kafka.Publisher.Takeover
	startTimeout   time.Duration
}

func (s *scaledFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.kafka, "kafka", "", "scale out: Kafka `brokers`, host:port,… (with --postgres)")
	fs.StringVar(&s.postgres, "postgres", "", "scale out: PostgreSQL connection `URL` (with --kafka)")
	fs.StringVar(&s.schema, "pg-schema", "public", "PostgreSQL `schema` of the application's tables, created when missing")
	fs.StringVar(&s.eventsSchemas, "events-schemas", "", "PostgreSQL `schemas` (comma-separated) of the other applications whose events this one's reactors react to, such as the core's for a split deployment's lists: a view rebuild reads those events there")
	fs.StringVar(&s.topicPrefix, "topic-prefix", "", "start of every Kafka topic's name (default the application's name)")
	fs.StringVar(&s.group, "group", "", "Kafka consumer group shared by the application's instances (default the application's name)")
	fs.IntVar(&s.partitions, "partitions", 4, "partitions of the topics created when missing: at most this many instances decide commands")
	fs.IntVar(&s.replication, "replication", -1, "replication factor of the topics created when missing (-1: the brokers' default)")
	fs.DurationVar(&s.retention, "retention", 0, "retention of the topics created when missing (0: the brokers' default; negative: forever)")
	fs.DurationVar(&s.sessionTimeout, "session-timeout", 10*time.Second, "how long the consumer group waits for a silent instance before moving its partitions: until then, commands on those partitions wait, and so do the reactions elsewhere that send them commands (the brokers bound it, 6s to 30 min by default)")
	fs.DurationVar(&s.takeover, "publisher-takeover", kafka.DefaultTakeover, "how long the instance publishing events to Kafka may stand still with events waiting before another takes over (it ends the holder's PostgreSQL session); at least 20s, twice the time a publish may take; negative: never")
	fs.DurationVar(&s.startTimeout, "start-timeout", 30*time.Second, "how long to wait at start for PostgreSQL and Kafka to answer (the store's schema, the topics) before giving up: one not reachable yet is tried again until then; a configuration error (a malformed URL, a refused password, a missing database) fails at once")
}

// set reports whether the scaled-out deployment was asked for.
func (s *scaledFlags) set() bool { return s.kafka != "" || s.postgres != "" }

// minTakeover is the shortest --publisher-takeover: twice the log's
// ProduceTimeout, so that a publisher that is only slow is not taken over.
const minTakeover = 2 * kafka.DefaultProduceTimeout

// pgLeaser grants the publisher's lease as a PostgreSQL advisory lock.
type pgLeaser struct{ st *postgres.Store }

func (l pgLeaser) TryLease(ctx context.Context, name string) (kafka.Lease, bool, error) {
	lease, ok, err := l.st.TryLease(ctx, name)
	if err != nil || !ok {
		return nil, false, err
	}
	return lease, true, nil
}

func (l pgLeaser) LeaseHolder(ctx context.Context, name string) (string, error) {
	return l.st.LeaseHolder(ctx, name)
}

func (l pgLeaser) EvictLease(ctx context.Context, name, holder string) (bool, error) {
	return l.st.EvictLease(ctx, name, holder)
}

// runScaled serves app scaled out: the command log on Kafka, the store on
// PostgreSQL, the same HTTP server as the embedded mode. Any number of
// instances may run with the same flags; they share the consumer group and
// the schema, and one of them at a time publishes events to Kafka.
func runScaled(ctx context.Context, prog program, sc scaledFlags, f serveFlags, ln net.Listener, auth *httpapi.Auth, log *slog.Logger, stdout io.Writer) error {
	if sc.kafka == "" || sc.postgres == "" {
		return usageError{errors.New("--kafka and --postgres go together: the scaled-out deployment needs both")}
	}
	app := prog.app
	if sc.partitions < 1 || sc.partitions > 1<<20 {
		return usageError{fmt.Errorf("--partitions %d: want 1 to %d", sc.partitions, 1<<20)}
	}
	if sc.replication < -1 || sc.replication == 0 || sc.replication > 1<<15-1 {
		return usageError{fmt.Errorf("--replication %d: want -1 or at least 1", sc.replication)}
	}
	if sc.startTimeout <= 0 {
		return usageError{fmt.Errorf("--start-timeout %s: want more than 0", sc.startTimeout)}
	}
	if sc.takeover >= 0 && sc.takeover < minTakeover {
		return usageError{fmt.Errorf("--publisher-takeover %s: want at least %s, twice the time a publish may take, or a negative duration for never", sc.takeover, minTakeover)}
	}
	brokers := splitBrokers(sc.kafka)
	// A database or broker that takes the connection and never answers
	// must not hold the start for minutes, listening and serving nothing.
	start, cancelStart := context.WithTimeout(ctx, sc.startTimeout)
	defer cancelStart()
	late := func(what string, err error) error {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("%s: no answer within --start-timeout %s: %w", what, sc.startTimeout, err)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	// A dependency not reachable yet (started at the same time, in
	// containers) is waited for, up to --start-timeout.
	var st *postgres.Store
	if err := dialUntil(start, log, "PostgreSQL", sc.startTimeout, func(ctx context.Context) (err error) {
		st, err = postgres.Open(ctx, sc.postgres, postgres.Options{Schema: sc.schema, Application: app.Name})
		return err
	}); err != nil {
		return fmt.Errorf("open the PostgreSQL store: %w", ownSchema(err))
	}
	defer st.Close()
	if err := st.EnsureIndexes(start, app.Aggregates); err != nil {
		return late("create indexes", err)
	}
	var klog *kafka.Log
	if err := dialUntil(start, log, "Kafka", sc.startTimeout, func(ctx context.Context) (err error) {
		klog, err = kafka.New(ctx, app, kafka.Options{
			Brokers: brokers, Prefix: sc.topicPrefix, Group: sc.group,
			Partitions: int32(sc.partitions), Replication: int16(sc.replication), Retention: sc.retention,
			Offsets: st, SessionTimeout: sc.sessionTimeout, Logger: log,
		})
		return err
	}); err != nil {
		return fmt.Errorf("open the Kafka log: %w", err)
	}
	defer klog.Close()
	sources, err := eventSources(start, app, st, sc.eventsSchemas)
	if err != nil {
		return late("open the events schemas", err)
	}
	cancelStart()
	e, err := engine.New(app, st, engine.Options{Logger: log, CommandLog: klog, ReactFromLog: true, TracerProvider: f.tracer, EventSources: sources})
	if err != nil {
		return err
	}

	// Once the instance is stopping, its publisher takes the lease no
	// more: it would hand it on in a moment.
	pub := &kafka.Publisher{Log: klog, Feed: st, Changed: e.FeedChanged, Checkpoints: st, Leaser: pgLeaser{st}, Spans: e.CommandSpan,
		Takeover: sc.takeover, Retiring: ctx.Done()}
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	var pubDone sync.WaitGroup
	pubDone.Go(func() {
		select {
		case <-e.Ready():
		case <-pubCtx.Done():
			return
		}
		pub.Run(pubCtx)
	})
	defer pubDone.Wait()
	defer stopPub()

	// Ready only while Kafka answers: an instance that cannot append a
	// command takes none.
	ready := func(ctx context.Context) error { return klog.Ping(ctx) }
	return serve(ctx, e, httpapi.Options{Auth: auth, MaxBody: f.maxBody, Web: prog.web, Logger: log, Ready: ready,
		Collectors: []prometheus.Collector{publisherCollector{pub}}}, f, ln, nil, log, stdout,
		fmt.Sprintf("scaled out on Kafka %s (group %s) and PostgreSQL schema %s", strings.Join(brokers, ","), groupName(sc, app), st.Schema()))
}

// eventSources opens, on st's pool, the stores of the other applications
// in schemas, and gives each the types of the other applications that
// app's reactors subscribe to: whichever of them records a type's events
// is read for it.
func eventSources(ctx context.Context, app plait.App, st *postgres.Store, schemas string) ([]engine.EventSource, error) {
	if schemas == "" {
		return nil, nil
	}
	own := map[string]bool{}
	for _, d := range app.Aggregates {
		own[d.Type()] = true
	}
	var foreign []string
	for _, r := range app.Reactors {
		for _, k := range r.Subscriptions() {
			if typ, _, _ := strings.Cut(k, "."); !own[typ] && !slices.Contains(foreign, typ) {
				foreign = append(foreign, typ)
			}
		}
	}
	var sources []engine.EventSource
	seen := map[string]bool{st.Schema(): true}
	for _, schema := range strings.Split(schemas, ",") {
		schema = strings.TrimSpace(schema)
		if schema == "" || seen[schema] {
			return nil, usageError{fmt.Errorf("--events-schemas %q: want the schemas of other applications, each once", schemas)}
		}
		seen[schema] = true
		other, err := postgres.New(ctx, st.Pool(), postgres.Options{Schema: schema, ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("--events-schemas: %w", err)
		}
		sources = append(sources, engine.EventSource{Types: foreign, Log: other})
	}
	return sources, nil
}

func groupName(sc scaledFlags, app plait.App) string {
	if sc.group != "" {
		return sc.group
	}
	return app.Name
}

// scaledBenchFlags choose the scaled-out figures of bench.
type scaledBenchFlags struct {
	kafka, postgres string
}

func (s *scaledBenchFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.kafka, "kafka", "", "measure the scaled-out figures on these Kafka `brokers` (host:port,…, or kfake for franz-go's in-process fake broker), with --postgres")
	fs.StringVar(&s.postgres, "postgres", "", "measure the scaled-out figures on this PostgreSQL `URL`, with --kafka; each figure gets a schema of its own, dropped at the end")
}

func (s *scaledBenchFlags) set() bool { return s.kafka != "" || s.postgres != "" }

// runScaledBench measures the scaled-out figures.
func runScaledBench(ctx context.Context, opts bench.Options, sc scaledBenchFlags, stdout io.Writer) error {
	if sc.kafka == "" || sc.postgres == "" {
		return usageError{errors.New("--kafka and --postgres go together")}
	}
	brokers := splitBrokers(sc.kafka)
	return bench.RunScaled(ctx, stdout, bench.ScaledOptions{Options: opts, Brokers: brokers, PostgresURL: sc.postgres})
}

// splitBrokers splits a --kafka list, host:port,…, into its brokers.
func splitBrokers(list string) []string {
	var brokers []string
	for b := range strings.SplitSeq(list, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	return brokers
}

// publisherCollector gives GET /metrics the series of the instance's
// publisher of events and outcomes to Kafka.
type publisherCollector struct{ p *kafka.Publisher }

var (
	publisherHolding = prometheus.NewDesc("plait_publisher_holding",
		"1 while this instance holds the publisher's lease and publishes the feed to Kafka, else 0.", nil, nil)
	publisherCheckpoint = prometheus.NewDesc("plait_publisher_checkpoint",
		"The feed position this instance's publisher last checkpointed while it held the lease; plait_feed_head minus it is what waits to be published.", nil, nil)
	publisherPublished = prometheus.NewDesc("plait_publisher_published_total",
		"Feed items this instance's publisher published to Kafka.", nil, nil)
	publisherStopped = prometheus.NewDesc("plait_publisher_stopped_total",
		"Times this instance's publisher stopped on an error and let the lease go.", nil, nil)
)

// Describe sends the descriptions of the series.
func (c publisherCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- publisherHolding
	ch <- publisherCheckpoint
	ch <- publisherPublished
	ch <- publisherStopped
}

// Collect sends the series.
func (c publisherCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.Stats()
	holding := 0.0
	if st.Holding {
		holding = 1
	}
	ch <- prometheus.MustNewConstMetric(publisherHolding, prometheus.GaugeValue, holding)
	ch <- prometheus.MustNewConstMetric(publisherCheckpoint, prometheus.GaugeValue, float64(st.Checkpoint))
	ch <- prometheus.MustNewConstMetric(publisherPublished, prometheus.CounterValue, float64(st.Published))
	ch <- prometheus.MustNewConstMetric(publisherStopped, prometheus.CounterValue, float64(st.Stopped))
}
