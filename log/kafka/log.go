package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// OffsetSource tells where a partition's consumption stands: the offset
// the store committed together with the effects of the records before it.
// postgres.Store implements it.
type OffsetSource interface {
	// Offset returns the offset of the next record of the partition to
	// consume, 0 if the partition was never committed.
	Offset(ctx context.Context, topic string, partition int32) (int64, error)
}

// Options configure a Log. Brokers is required; Offsets is required to
// Consume.
type Options struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Prefix starts every topic's name (default the application's name).
	Prefix string
	// Group is the consumer group that shares the commands topics among
	// the application's instances (default the application's name).
	Group string
	// Partitions is how many partitions the topics are created with
	// (default 4). It bounds how many instances get commands to decide.
	Partitions int32
	// Replication is the replication factor the topics are created with
	// (default -1: the brokers' default.replication.factor).
	Replication int16
	// Retention is the retention.ms the topics are created with: 0 leaves
	// the brokers' default, a negative value keeps records forever.
	Retention time.Duration
	// Offsets tells Consume where each assigned partition resumes.
	Offsets OffsetSource
	// MaxBatch caps the commands of one batch handed to the engine
	// (default 256).
	MaxBatch int
	// SessionTimeout is how long the group waits for a silent instance
	// before it gives its partitions to the others (default 45s, the
	// client's default).
	SessionTimeout time.Duration
	// ProduceTimeout bounds how long Append and the publisher wait for a
	// record to be acknowledged (default 10s; franz-go wants 1s or more).
	// A record still in flight when it runs out may be stored after all:
	// see Append.
	ProduceTimeout time.Duration
	// StatusTimeout bounds how long Undecided searches the commands
	// topics for a command another instance took (default 5s): a status
	// asked for while the brokers are slow or far behind is an error, not
	// a request held for as long as the search takes.
	StatusTimeout time.Duration
	// MaxRecordBytes is the largest record produced, set as the topics'
	// max.message.bytes when they are created (default 8 MiB, room for a
	// command whose data is as large as the HTTP API takes, and its events).
	MaxRecordBytes int32
	// Logger receives the log's logs (default slog.Default()).
	Logger *slog.Logger
	// ClientOpts are added to every client the log makes: TLS, SASL, ...
	ClientOpts []kgo.Opt
}

var prefixPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

func (o *Options) defaults(app plait.App) error {
	if len(o.Brokers) == 0 {
		return errors.New("kafka: no brokers")
	}
	if o.Prefix == "" {
		o.Prefix = app.Name
	}
	if !prefixPattern.MatchString(o.Prefix) {
		return fmt.Errorf("kafka: topic prefix %q: want letters, digits, '.', '_' or '-', at most 200", o.Prefix)
	}
	if o.Group == "" {
		o.Group = app.Name
	}
	if o.Partitions <= 0 {
		o.Partitions = 4
	}
	if o.Replication == 0 {
		o.Replication = -1
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = 8 << 20
	}
	if o.StatusTimeout <= 0 {
		o.StatusTimeout = 5 * time.Second
	}
	if o.ProduceTimeout <= 0 {
		o.ProduceTimeout = DefaultProduceTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Log is an application's command log on Kafka: one commands topic per
// aggregate type, keyed by aggregate id. It implements engine.CommandLog.
// It is safe for concurrent use.
type Log struct {
	app      plait.App
	opts     Options
	log      *slog.Logger
	producer *kgo.Client
	commands map[string]string // aggregate type → its commands topic

	topicTypes map[string]string // commands or events topic → its aggregate type

	consumersMu sync.Mutex
	consumers   map[*consumer]bool // the Consume calls running, for PartitionLags

	lookups       undecidedLookups // Undecided's scans of the commands topics
	scans         atomic.Int64     // how many scans Undecided ran, for tests
	closing       context.Context  // done once Close is called
	cancelClosing context.CancelFunc
}

// DefaultProduceTimeout is the default of Options.ProduceTimeout.
const DefaultProduceTimeout = 10 * time.Second

var _ engine.CommandLog = (*Log)(nil)

// New connects to the brokers, creates the application's topics where
// missing (commands and events of every aggregate type, and the outcomes)
// and returns the log. Close closes its connections. Topics another
// application published events to (a prefix shared by mistake) are
// refused with an error wrapping engine.ErrOtherApplication.
func New(ctx context.Context, app plait.App, opts Options) (*Log, error) {
	if err := app.Validate(); err != nil {
		return nil, err
	}
	if err := opts.defaults(app); err != nil {
		return nil, err
	}
	l := &Log{app: app, opts: opts, log: opts.Logger, commands: map[string]string{}, topicTypes: map[string]string{}, consumers: map[*consumer]bool{}}
	l.closing, l.cancelClosing = context.WithCancel(context.Background())
	l.lookups.scan = l.scanUndecided
	for _, d := range app.Aggregates {
		l.commands[d.Type()] = l.CommandsTopic(d.Type())
		l.topicTypes[l.CommandsTopic(d.Type())] = d.Type()
		l.topicTypes[l.EventsTopic(d.Type())] = d.Type()
	}
	cl, err := kgo.NewClient(l.clientOpts(
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(opts.ProduceTimeout),
		kgo.ProducerBatchMaxBytes(opts.MaxRecordBytes),
		kgo.BrokerMaxWriteBytes(2*opts.MaxRecordBytes),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: make the producer: %w", err)
	}
	l.producer = cl
	if err := l.ensureTopics(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	if err := l.checkOwnEvents(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	return l, nil
}

// clientOpts are the options of every client: the brokers, the user's
// options, then extra.
func (l *Log) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(l.opts.Brokers...), kgo.ClientID("plait-" + l.app.Name)}
	opts = append(opts, l.opts.ClientOpts...)
	return append(opts, extra...)
}

// Ping reports whether a broker answers, for readiness checks.
func (l *Log) Ping(ctx context.Context) error {
	if err := l.producer.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: no broker answers: %w", err)
	}
	return nil
}

// Close closes the log's producer. Consume's own client closes when its
// context ends.
func (l *Log) Close() error {
	l.cancelClosing()
	l.producer.Close()
	return nil
}

// CommandsTopic is the topic of aggregate type typ's commands.
func (l *Log) CommandsTopic(typ string) string { return l.opts.Prefix + "." + typ + ".commands" }

// EventsTopic is the topic the publisher writes aggregate type typ's events to.
func (l *Log) EventsTopic(typ string) string { return l.opts.Prefix + "." + typ + ".events" }

// OutcomesTopic is the topic the publisher writes every command's outcome to.
func (l *Log) OutcomesTopic() string { return l.opts.Prefix + ".outcomes" }

// Topics lists every topic of the application.
func (l *Log) Topics() []string {
	var ts []string
	for _, d := range l.app.Aggregates {
		ts = append(ts, l.CommandsTopic(d.Type()), l.EventsTopic(d.Type()))
	}
	return append(ts, l.OutcomesTopic())
}

// ensureTopics creates the topics that do not exist yet. Several instances
// may start at once: a topic another one created first is fine.
func (l *Log) ensureTopics(ctx context.Context) error {
	adm := kadm.NewClient(l.producer)
	configs := map[string]*string{"max.message.bytes": new(strconv.Itoa(int(l.opts.MaxRecordBytes)))}
	switch {
	case l.opts.Retention < 0:
		configs["retention.ms"] = new("-1")
	case l.opts.Retention > 0:
		configs["retention.ms"] = new(strconv.FormatInt(l.opts.Retention.Milliseconds(), 10))
	}
	// The events topics of another application's types the reactors
	// consume are created too, the same way, so that either application
	// may start first.
	topics := l.Topics()
	for _, t := range l.ReactorTopics() {
		if !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	resps, err := adm.CreateTopics(ctx, l.opts.Partitions, l.opts.Replication, configs, topics...)
	if err != nil {
		return fmt.Errorf("kafka: create topics: %w", err)
	}
	for _, r := range resps.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %s (%d partitions, replication %d): %w", r.Topic, l.opts.Partitions, l.opts.Replication, r.Err)
		}
	}
	return nil
}

// Append produces cmd to its type's commands topic, keyed by its aggregate
// id, and returns once every in-sync replica has it (acks=all). The sender,
// if any, goes in the record's plait_sender header. When ctx holds a span
// (the engine traces), its W3C trace context goes in the record's
// traceparent and tracestate headers.
//
// Append returns once ctx ends or ProduceTimeout passes, whichever comes
// first, even when the record is in flight: the idempotent producer keeps
// a record it has sent until the broker answers, whatever its context, and
// may then store it. The error then wraps engine.ErrUnconfirmed: the
// command may be stored without having been acknowledged, and decided. The
// sender is told to send it again with the same id, which the dedup by
// command id makes safe: it is decided once, and the resend gets its
// outcome.
func (l *Log) Append(ctx context.Context, cmd plait.Command, sender *plait.User) error {
	topic, ok := l.commands[cmd.Type]
	if !ok {
		return fmt.Errorf("kafka: append command %s: %w: %q", cmd.ID, plait.ErrUnknownType, cmd.Type)
	}
	rec, err := commandRecord(topic, cmd, sender)
	if err != nil {
		return fmt.Errorf("kafka: append command %s: %w", cmd.ID, err)
	}
	injectTrace(ctx, rec)
	// The delivery timeout does not bound a record that waits for the
	// topic's metadata, as it does while no broker answers: the context does.
	if err := l.produce(ctx, rec); err != nil {
		if errors.Is(err, errInFlight) {
			err = fmt.Errorf("%w: %w", engine.ErrUnconfirmed, err)
		}
		return fmt.Errorf("kafka: produce command %s to %s (acks=all, timeout %s): %w", cmd.ID, topic, l.opts.ProduceTimeout, err)
	}
	return nil
}

// errInFlight is produce's error when it stopped waiting for records that
// may yet be stored.
var errInFlight = errors.New("kafka: stopped waiting for the broker's acknowledgement; the record may be stored yet")

// produce produces recs and waits until every one is acknowledged, one
// fails, or ctx ends or ProduceTimeout passes, whichever comes first.
// Neither the delivery timeout nor the context bounds a record the idempotent
// producer has sent: it waits for the broker's answer, and may yet store
// the record after produce returned; the error then wraps errInFlight, and
// ctx's error.
func (l *Log) produce(ctx context.Context, recs ...*kgo.Record) error {
	ctx, cancel := context.WithTimeout(ctx, l.opts.ProduceTimeout)
	defer cancel()
	results := make(chan error, len(recs)) // each promise runs once, maybe after produce returned
	for _, rec := range recs {
		l.producer.Produce(ctx, rec, func(_ *kgo.Record, err error) { results <- err })
	}
	for range recs {
		select {
		case err := <-results:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", errInFlight, ctx.Err())
		}
	}
	return nil
}

// senderHeader is the header of a command record that holds who sent the
// command, as JSON {"id":…,"roles":[…]}; a record without it is one of
// the engine's own commands.
const senderHeader = "plait_sender"

// sender is the JSON of senderHeader.
type sender struct {
	ID    string   `json:"id"`
	Roles []string `json:"roles"`
}

// commandRecord is the record of cmd: key the aggregate id, value the
// command's JSON, the envelope's ids and its sender in headers.
func commandRecord(topic string, cmd plait.Command, from *plait.User) (*kgo.Record, error) {
	value, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	rec := &kgo.Record{Topic: topic, Key: []byte(cmd.AggregateID), Value: value}
	rec.Headers = append(rec.Headers,
		kgo.RecordHeader{Key: "plait_id", Value: []byte(cmd.ID)},
		kgo.RecordHeader{Key: "plait_type", Value: []byte(cmd.Type + "." + cmd.Name)},
		kgo.RecordHeader{Key: "plait_correlationid", Value: []byte(cmd.CorrelationID)},
	)
	if cmd.CausationID != "" {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "plait_causationid", Value: []byte(cmd.CausationID)})
	}
	if from != nil {
		v, err := json.Marshal(sender{ID: from.ID, Roles: from.Roles})
		if err != nil {
			return nil, fmt.Errorf("encode the sender: %w", err)
		}
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: senderHeader, Value: v})
	}
	return rec, nil
}

// decodeSender reads the sender of a command record, nil for one of the
// engine's own commands.
func decodeSender(rec *kgo.Record) (*plait.User, error) {
	for _, h := range rec.Headers {
		if h.Key != senderHeader {
			continue
		}
		var s sender
		if err := json.Unmarshal(h.Value, &s); err != nil || s.ID == "" {
			return nil, fmt.Errorf("decode %s/%d@%d: the %s header %q is no sender", rec.Topic, rec.Partition, rec.Offset, senderHeader, h.Value)
		}
		return &plait.User{ID: s.ID, Roles: s.Roles}, nil
	}
	return nil, nil
}

// decodeCommand reads a commands topic's record back.
func decodeCommand(rec *kgo.Record) (plait.Command, error) {
	var cmd plait.Command
	if err := json.Unmarshal(rec.Value, &cmd); err != nil {
		return cmd, fmt.Errorf("decode %s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
	}
	if cmd.ID == "" || cmd.Type == "" || cmd.AggregateID == "" {
		return cmd, fmt.Errorf("decode %s/%d@%d: not a command (no id, type or aggregateId)", rec.Topic, rec.Partition, rec.Offset)
	}
	return cmd, nil
}
