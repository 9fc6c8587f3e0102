package enginetest

import (
	"context"
	"hash/fnv"
	"sync"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// MemLog is an in-memory, partitioned command log for testing the engine's
// scaled-out mode without a broker. Like Kafka, it keeps every record, keys
// records to partitions by aggregate, and lets a consumer resume a
// partition from the offset its store committed. Records survive engine
// restarts as long as the MemLog value does.
type MemLog struct {
	topic      string
	partitions [][]plait.Command
	senders    [][]*plait.User // by partition and offset, as partitions
	mu         sync.Mutex
	grew       chan struct{}
	// Resume returns the committed offset of a partition, where Consume
	// starts it.
	Resume func(ctx context.Context, topic string, partition int32) (int64, error)
}

// NewMemLog makes a log of n partitions.
func NewMemLog(topic string, n int, resume func(ctx context.Context, topic string, partition int32) (int64, error)) *MemLog {
	return &MemLog{topic: topic, partitions: make([][]plait.Command, n), senders: make([][]*plait.User, n), grew: make(chan struct{}), Resume: resume}
}

// Append adds cmd and its sender to the partition of its aggregate
// instance.
func (l *MemLog) Append(ctx context.Context, cmd plait.Command, sender *plait.User) error {
	h := fnv.New32a()
	h.Write([]byte(cmd.Type + "\x00" + cmd.AggregateID))
	p := int(h.Sum32() % uint32(len(l.partitions)))
	l.mu.Lock()
	l.partitions[p] = append(l.partitions[p], cmd)
	l.senders[p] = append(l.senders[p], sender)
	close(l.grew)
	l.grew = make(chan struct{})
	l.mu.Unlock()
	return nil
}

// Consume hands handle every partition's records from its committed offset,
// one partition at a time per goroutine, retrying a batch that failed.
func (l *MemLog) Consume(ctx context.Context, handle func(context.Context, engine.LogBatch) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(l.partitions))
	for p := range l.partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.consume(ctx, int32(p), handle); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func (l *MemLog) consume(ctx context.Context, p int32, handle func(context.Context, engine.LogBatch) error) error {
	next, err := l.Resume(ctx, l.topic, p)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		l.mu.Lock()
		recs, senders := l.partitions[p], l.senders[p]
		grew := l.grew
		l.mu.Unlock()
		if int(next) >= len(recs) {
			select {
			case <-grew:
			case <-ctx.Done():
			}
			continue
		}
		end := int64(min(len(recs), int(next)+64))
		err := handle(ctx, engine.LogBatch{Commands: recs[next:end], Senders: senders[next:end], Offset: engine.Offset{Topic: l.topic, Partition: p, Next: end}})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
			if next, err = l.Resume(ctx, l.topic, p); err != nil {
				return err
			}
			continue
		}
		next = end
	}
	return nil
}
