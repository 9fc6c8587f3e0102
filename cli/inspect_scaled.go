package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/log/kafka"
	"github.com/plaithq/plait/store/postgres"
)

// inspectScaledFlags choose the scaled-out deployment to inspect: the same
// values as plait serve --kafka … --postgres … was given.
type inspectScaledFlags struct {
	kafka, postgres, schema, topicPrefix, group string
}

func (s *inspectScaledFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.kafka, "kafka", "", "inspect the scaled-out deployment on these Kafka `brokers`, host:port,… (with --postgres)")
	fs.StringVar(&s.postgres, "postgres", "", "inspect the scaled-out deployment whose store is at this PostgreSQL `URL` (with --kafka)")
	fs.StringVar(&s.schema, "pg-schema", "public", "PostgreSQL `schema` of the application's tables")
	fs.StringVar(&s.topicPrefix, "topic-prefix", "", "start of every Kafka topic's name (default the application's name)")
	fs.StringVar(&s.group, "group", "", "the application's Kafka consumer group (default the application's name)")
}

func (s *inspectScaledFlags) set() bool { return s.kafka != "" || s.postgres != "" }

// runInspectScaled shows where a scaled-out application stands: the
// store's log head and instances, the publisher's checkpoint, and for each
// partition its group consumes, the offset handled (committed in
// PostgreSQL with its effects), the topic's end offset, the lag and the
// instance that owns it.
func runInspectScaled(ctx context.Context, app plait.App, sc inspectScaledFlags, stdout io.Writer) error {
	if sc.kafka == "" || sc.postgres == "" {
		return usageError{errors.New("--kafka and --postgres go together")}
	}
	brokers := splitBrokers(sc.kafka)
	// Read-only: a mistyped --pg-schema must say so, not make an empty store.
	st, err := postgres.Open(ctx, sc.postgres, postgres.Options{Schema: sc.schema, ReadOnly: true, Application: app.Name})
	if err != nil {
		return fmt.Errorf("open the PostgreSQL store: %w", ownSchema(err))
	}
	defer st.Close()
	cps, head, counts, err := readStatus(ctx, st)
	if err != nil {
		return err
	}
	group, err := kafka.Inspect(ctx, app, kafka.Options{Brokers: brokers, Prefix: sc.topicPrefix, Group: sc.group, Offsets: st,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	state := group.State
	if state == "" {
		state = "unknown"
	}
	fmt.Fprintf(stdout, "application %s\nkafka       %s, group %s: %s, %d members\nstore       PostgreSQL schema %s\nlog head    %d\n\n",
		app.Name, strings.Join(brokers, ","), group.Group, state, group.Members, st.Schema(), head)
	printAggregates(stdout, app, func(typ string) (int64, int64) { c := counts[typ]; return c.Instances, c.Events })
	// The feed's subscriptions: the publisher, and reactors that read the
	// feed rather than the events topics.
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBSCRIPTION\tCHECKPOINT\tLAG")
	names := []string{kafka.PublisherCheckpoint}
	for n := range cps {
		if n != kafka.PublisherCheckpoint {
			names = append(names, n)
		}
	}
	sort.Strings(names[1:])
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", n, cps[n], head-cps[n])
	}
	tw.Flush()
	fmt.Fprintln(stdout)
	// The group's partitions: the commands it decides and the events its
	// reactors consume.
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tKIND\tPARTITION\tHANDLED\tEND\tLAG\tOWNER")
	for _, p := range group.Partitions {
		owner := p.Owner
		if owner == "" {
			owner = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", p.Topic, p.Kind, p.Partition, p.Handled, p.End, p.Lag, owner)
	}
	return tw.Flush()
}
