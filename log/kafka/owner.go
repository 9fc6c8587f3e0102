package kafka

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/plaithq/plait/engine"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ownerCheckTimeout bounds how long New reads the last events of its
// topics to find whose they are.
const ownerCheckTimeout = 10 * time.Second

// checkOwnEvents reads the last record of every partition of the events
// topics of the application's own types and returns an error wrapping
// engine.ErrOtherApplication when one was published by another
// application (its CloudEvents source names it): two applications whose
// topics share a prefix, one of them another's part maybe, would each
// consume the other's commands and publish events under the same ids. The
// events topics another application's reactors read are that
// application's, not checked; the outcomes topic, which the applications
// of a split deployment share, neither.
func (l *Log) checkOwnEvents(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ownerCheckTimeout)
	defer cancel()
	topics := make([]string, 0, len(l.app.Aggregates))
	for _, d := range l.app.Aggregates {
		topics = append(topics, l.EventsTopic(d.Type()))
	}
	adm := kadm.NewClient(l.producer)
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("kafka: list the start offsets of the events topics: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("kafka: list the end offsets of the events topics: %w", err)
	}
	from := map[string]map[int32]kgo.Offset{}
	last := map[topicPartition]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		start, ok := starts.Lookup(o.Topic, o.Partition)
		if o.Err != nil || !ok || start.Err != nil || o.Offset <= start.Offset {
			return // empty, or unreadable: nothing to tell
		}
		if from[o.Topic] == nil {
			from[o.Topic] = map[int32]kgo.Offset{}
		}
		from[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset - 1)
		last[topicPartition{o.Topic, o.Partition}] = o.Offset - 1
	})
	if len(last) == 0 {
		return nil
	}
	prefix := "/" + l.app.Name + "/"
	var other error
	// Each partition is read from its last record to it: that one alone.
	err = l.readUpTo(ctx, from, last, func(r *kgo.Record) bool {
		for _, h := range r.Headers {
			if src := string(h.Value); h.Key == "ce_source" && !strings.HasPrefix(src, prefix) {
				app, _, _ := strings.Cut(strings.TrimPrefix(src, "/"), "/")
				other = fmt.Errorf("%w: topic %s holds the events of application %q, not %q: give this application a --topic-prefix of its own (now %q)",
					engine.ErrOtherApplication, r.Topic, app, l.app.Name, l.opts.Prefix)
				return true
			}
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("kafka: read the last events of the events topics: %w", err)
	}
	return other
}
