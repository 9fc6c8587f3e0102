package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/plaithq/plait"
)

// GroupStatus is where an application's consumer group stands: its
// members, and how far each partition it consumes was handled.
type GroupStatus struct {
	Group   string
	State   string // as Kafka tells it: Stable, Empty, PreparingRebalance, Dead…
	Members int
	// Partitions are every partition of the topics the group consumes, by
	// topic then partition.
	Partitions []PartitionStatus
}

// PartitionStatus is one partition the group consumes.
type PartitionStatus struct {
	Topic     string
	Partition int32
	// Kind is "commands" for a commands topic the group decides, "events"
	// for an events topic its reactors consume.
	Kind string
	// Handled is the offset the store committed: the next record to
	// handle. Kafka's committed offsets are not used (see the package doc).
	Handled int64
	// End is the topic's end offset: the offset the next record will get.
	End int64
	// Lag is End - Handled: the records not handled yet.
	Lag int64
	// Owner is the group member assigned the partition, empty when none.
	Owner string
}

// Inspect reports where app's consumer group (Options.Group) stands on the
// topics it consumes: the commands topics of its types and the events
// topics its reactors read. The handled offsets come from Options.Offsets,
// the end offsets and the owners from Kafka. It creates nothing: a topic
// that does not exist yet is left out.
func Inspect(ctx context.Context, app plait.App, opts Options) (GroupStatus, error) {
	if err := app.Validate(); err != nil {
		return GroupStatus{}, err
	}
	if err := opts.defaults(app); err != nil {
		return GroupStatus{}, err
	}
	if opts.Offsets == nil {
		return GroupStatus{}, errors.New("kafka: inspect: no OffsetSource in Options.Offsets")
	}
	l := &Log{app: app, opts: opts, log: opts.Logger}
	kinds := map[string]string{}
	for _, d := range app.Aggregates {
		kinds[l.CommandsTopic(d.Type())] = "commands"
	}
	for _, t := range l.ReactorTopics() {
		kinds[t] = "events"
	}
	topics := make([]string, 0, len(kinds))
	for t := range kinds {
		topics = append(topics, t)
	}
	cl, err := kgo.NewClient(l.clientOpts()...)
	if err != nil {
		return GroupStatus{}, fmt.Errorf("kafka: inspect: make a client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	st := GroupStatus{Group: opts.Group}
	owners := map[topicPartition]string{}
	groups, err := adm.DescribeGroups(ctx, opts.Group)
	if err != nil {
		return st, fmt.Errorf("kafka: inspect: describe group %s: %w", opts.Group, err)
	}
	if g, ok := groups[opts.Group]; ok {
		if g.Err != nil && !errors.Is(g.Err, kerr.GroupIDNotFound) {
			return st, fmt.Errorf("kafka: inspect: describe group %s: %w", opts.Group, g.Err)
		}
		st.State, st.Members = g.State, len(g.Members)
		for _, m := range g.Members {
			a, ok := m.Assigned.AsConsumer()
			if !ok {
				continue
			}
			who := m.MemberID
			if h := strings.TrimPrefix(m.ClientHost, "/"); h != "" {
				who = h + " " + who
			}
			for _, t := range a.Topics {
				for _, p := range t.Partitions {
					owners[topicPartition{t.Topic, p}] = who
				}
			}
		}
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return st, fmt.Errorf("kafka: inspect: list end offsets: %w", err)
	}
	var failed error
	ends.Each(func(o kadm.ListedOffset) {
		if failed != nil || errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
			return
		}
		if o.Err != nil {
			failed = fmt.Errorf("kafka: inspect: end offset of %s/%d: %w", o.Topic, o.Partition, o.Err)
			return
		}
		handled, err := opts.Offsets.Offset(ctx, o.Topic, o.Partition)
		if err != nil {
			failed = fmt.Errorf("kafka: inspect: %w", err)
			return
		}
		st.Partitions = append(st.Partitions, PartitionStatus{
			Topic: o.Topic, Partition: o.Partition, Kind: kinds[o.Topic],
			Handled: handled, End: o.Offset, Lag: max(o.Offset-handled, 0),
			Owner: owners[topicPartition{o.Topic, o.Partition}],
		})
	})
	if failed != nil {
		return st, failed
	}
	slices.SortFunc(st.Partitions, func(a, b PartitionStatus) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	return st, nil
}
