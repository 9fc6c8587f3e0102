package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

var _ engine.UndecidedFinder = (*Log)(nil)

// Undecided returns command id if it is in a commands topic past the
// offset the store committed for its partition: appended, acknowledged,
// and not decided yet, whichever instance it was sent to. It reads only
// that tail of each partition, the records no instance has decided; when
// every partition is caught up it reads none.
func (l *Log) Undecided(ctx context.Context, id string) (plait.Command, bool, error) {
	if l.opts.Offsets == nil {
		return plait.Command{}, false, fmt.Errorf("kafka: undecided %s: no OffsetSource in Options.Offsets", id)
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.StatusTimeout)
	defer cancel()
	topics := make([]string, 0, len(l.commands))
	for _, t := range l.commands {
		topics = append(topics, t)
	}
	ends, err := kadm.NewClient(l.producer).ListEndOffsets(ctx, topics...)
	if err != nil {
		return plait.Command{}, false, fmt.Errorf("kafka: undecided %s: list end offsets: %w", id, err)
	}
	from := map[string]map[int32]kgo.Offset{}
	last := map[topicPartition]int64{} // the offset of each tail's last record
	var failed error
	ends.Each(func(o kadm.ListedOffset) {
		if failed != nil {
			return
		}
		if o.Err != nil {
			failed = fmt.Errorf("kafka: undecided %s: end offset of %s/%d: %w", id, o.Topic, o.Partition, o.Err)
			return
		}
		next, err := l.opts.Offsets.Offset(ctx, o.Topic, o.Partition)
		if err != nil {
			failed = fmt.Errorf("kafka: undecided %s: %w", id, err)
			return
		}
		if next >= o.Offset {
			return
		}
		if from[o.Topic] == nil {
			from[o.Topic] = map[int32]kgo.Offset{}
		}
		from[o.Topic][o.Partition] = kgo.NewOffset().At(next)
		last[topicPartition{o.Topic, o.Partition}] = o.Offset - 1
	})
	if failed != nil || len(last) == 0 {
		return plait.Command{}, false, failed
	}
	cl, err := kgo.NewClient(l.clientOpts(kgo.ConsumePartitions(from))...)
	if err != nil {
		return plait.Command{}, false, fmt.Errorf("kafka: undecided %s: make a reader: %w", id, err)
	}
	defer cl.Close()
	for len(last) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return plait.Command{}, false, fmt.Errorf("kafka: undecided %s: %d partitions left to read: %w", id, len(last), ctx.Err())
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return plait.Command{}, false, fmt.Errorf("kafka: undecided %s: fetch %s/%d: %w", id, errs[0].Topic, errs[0].Partition, errs[0].Err)
		}
		var found *kgo.Record
		fetches.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if found == nil && h.Key == "plait_id" && string(h.Value) == id {
					found = r // the first: the one decided, later ones being its duplicates
				}
			}
			tp := topicPartition{r.Topic, r.Partition}
			if end, ok := last[tp]; ok && r.Offset >= end {
				delete(last, tp)
			}
		})
		if found != nil {
			cmd, err := decodeCommand(found)
			if err != nil {
				return plait.Command{}, false, fmt.Errorf("kafka: undecided %s: %w", id, err)
			}
			return cmd, true, nil
		}
	}
	return plait.Command{}, false, nil
}
