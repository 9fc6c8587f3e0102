package kafka

import (
	"context"
	"fmt"
	"sync"

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
//
// Calls share their reads: one scan of the tails runs at a time, and it
// looks for every id asked for while the one before it ran. So a burst of
// status requests, or a client polling an id that was never sent, costs
// one reader at a time, not one each. A scan is bounded by
// Options.StatusTimeout.
func (l *Log) Undecided(ctx context.Context, id string) (plait.Command, bool, error) {
	if l.opts.Offsets == nil {
		return plait.Command{}, false, fmt.Errorf("kafka: undecided %s: no OffsetSource in Options.Offsets", id)
	}
	// A caller that comes while a scan runs waits for the next one too:
	// it too is bounded by StatusTimeout.
	ctx, cancel := context.WithTimeout(ctx, l.opts.StatusTimeout)
	defer cancel()
	ch := l.lookups.ask(id)
	select {
	case r := <-ch:
		if r.err != nil {
			return plait.Command{}, false, fmt.Errorf("kafka: undecided %s: %w", id, r.err)
		}
		return r.cmd, r.found, nil
	case <-ctx.Done():
		return plait.Command{}, false, fmt.Errorf("kafka: undecided %s: %w", id, ctx.Err())
	}
}

// undecidedResult answers one id of a scan.
type undecidedResult struct {
	cmd   plait.Command
	found bool
	err   error
}

// undecidedLookups gathers the ids asked for into scans, one at a time.
type undecidedLookups struct {
	scan    func(ids map[string]bool) (map[string]undecidedResult, error)
	mu      sync.Mutex
	next    map[string][]chan undecidedResult // the ids of the scan to come
	running bool
}

// ask adds id to the next scan, starting one if none runs, and returns
// where its answer comes. The next scan begins after ask returns, so it
// sees every record appended before the call.
func (u *undecidedLookups) ask(id string) <-chan undecidedResult {
	ch := make(chan undecidedResult, 1)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.next == nil {
		u.next = map[string][]chan undecidedResult{}
	}
	u.next[id] = append(u.next[id], ch)
	if !u.running {
		u.running = true
		go u.run()
	}
	return ch
}

// run scans for the ids waiting, then for those asked for meanwhile,
// until none is left.
func (u *undecidedLookups) run() {
	for {
		u.mu.Lock()
		waiting := u.next
		u.next = nil
		if len(waiting) == 0 {
			u.running = false
			u.mu.Unlock()
			return
		}
		u.mu.Unlock()
		ids := make(map[string]bool, len(waiting))
		for id := range waiting {
			ids[id] = true
		}
		found, err := u.scan(ids)
		for id, chs := range waiting {
			r := found[id]
			if err != nil {
				r = undecidedResult{err: err}
			}
			for _, ch := range chs {
				ch <- r
			}
		}
	}
}

// scanUndecided reads the undecided tail of every commands partition once,
// until it has found every id of ids or read each tail to its end, and
// returns the first record of each id it found, decoded (a record that
// does not decode fails its id alone). It gives up after
// Options.StatusTimeout, or when the log closes.
func (l *Log) scanUndecided(ids map[string]bool) (map[string]undecidedResult, error) {
	l.scans.Add(1)
	ctx, cancel := context.WithTimeout(l.closing, l.opts.StatusTimeout)
	defer cancel()
	topics := make([]string, 0, len(l.commands))
	for _, t := range l.commands {
		topics = append(topics, t)
	}
	ends, err := kadm.NewClient(l.producer).ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	from := map[string]map[int32]kgo.Offset{}
	last := map[topicPartition]int64{} // the offset of each tail's last record
	var failed error
	ends.Each(func(o kadm.ListedOffset) {
		if failed != nil {
			return
		}
		if o.Err != nil {
			failed = fmt.Errorf("end offset of %s/%d: %w", o.Topic, o.Partition, o.Err)
			return
		}
		next, err := l.opts.Offsets.Offset(ctx, o.Topic, o.Partition)
		if err != nil {
			failed = err
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
		return nil, failed
	}
	found := map[string]undecidedResult{}
	err = l.readUpTo(ctx, from, last, func(r *kgo.Record) bool {
		for _, h := range r.Headers {
			id := string(h.Value)
			if h.Key != "plait_id" || !ids[id] {
				continue
			}
			if _, seen := found[id]; seen {
				continue // the first is the one decided, later ones its duplicates
			}
			cmd, err := decodeCommand(r)
			found[id] = undecidedResult{cmd: cmd, found: err == nil, err: err}
		}
		return len(found) == len(ids)
	})
	if err != nil {
		return nil, err
	}
	return found, nil
}

// readUpTo reads each partition of from, from its offset there, up to and
// including its offset in last, and hands each record read to fn, until
// every partition is read or fn returns true.
func (l *Log) readUpTo(ctx context.Context, from map[string]map[int32]kgo.Offset, last map[topicPartition]int64, fn func(*kgo.Record) (done bool)) error {
	cl, err := kgo.NewClient(l.clientOpts(kgo.ConsumePartitions(from))...)
	if err != nil {
		return fmt.Errorf("make a reader: %w", err)
	}
	defer cl.Close()
	done := false
	for len(last) > 0 && !done {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("%d partitions left to read: %w", len(last), ctx.Err())
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("fetch %s/%d: %w", errs[0].Topic, errs[0].Partition, errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			tp := topicPartition{r.Topic, r.Partition}
			if end, ok := last[tp]; done || !ok || r.Offset > end {
				return // past what is read
			} else if r.Offset == end {
				delete(last, tp)
			}
			done = fn(r)
		})
	}
	return nil
}
