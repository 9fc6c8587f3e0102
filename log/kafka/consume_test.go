package kafka_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/log/kafka"
)

// memStore stands for the engine and its store: it commits a batch's
// commands and the consumed offset together, refuses an offset lower than
// the one it has (another consumer went further), and fails some commits
// on purpose, half of them after committing, as a lost answer would.
type memStore struct {
	mu       sync.Mutex
	offsets  map[string]int64
	handled  map[string]int   // command id → times committed
	order    map[string][]int // aggregate id → the n of its commands, in commit order
	inFlight map[string]bool  // topic/partition → a batch is being handled
	failures int
	rng      *rand.Rand
	overlap  bool // two batches of one partition were handled at once
}

func newMemStore() *memStore {
	return &memStore{offsets: map[string]int64{}, handled: map[string]int{}, order: map[string][]int{},
		inFlight: map[string]bool{}, rng: rand.New(rand.NewPCG(1, 2))}
}

func key(topic string, p int32) string { return fmt.Sprintf("%s/%d", topic, p) }

func (s *memStore) Offset(_ context.Context, topic string, p int32) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offsets[key(topic, p)], nil
}

var errInjected = errors.New("injected failure")

func (s *memStore) handle(_ context.Context, b engine.LogBatch) error {
	k := key(b.Offset.Topic, b.Offset.Partition)
	s.mu.Lock()
	if s.inFlight[k] {
		s.overlap = true
	}
	s.inFlight[k] = true
	// Some batches are slow, so that a rebalance happens while they are
	// in flight, and a concurrent batch of the partition would show.
	pause := time.Millisecond
	if s.rng.IntN(15) == 0 {
		pause = 200 * time.Millisecond
	}
	s.mu.Unlock()
	time.Sleep(pause)
	s.mu.Lock()
	defer s.mu.Unlock()
	defer delete(s.inFlight, k)
	fail := s.rng.IntN(10) == 0
	if fail && s.rng.IntN(2) == 0 {
		s.failures++
		return errInjected // before committing
	}
	if b.Offset.Next < s.offsets[k] {
		return fmt.Errorf("conflict: offset %d below %d", b.Offset.Next, s.offsets[k])
	}
	for _, c := range b.Commands {
		if s.handled[c.ID] > 0 {
			continue // the engine's dedup
		}
		s.handled[c.ID]++
		var n int
		fmt.Sscanf(c.ID[len(c.AggregateID)+1:], "%d", &n)
		s.order[c.AggregateID] = append(s.order[c.AggregateID], n)
	}
	s.offsets[k] = b.Offset.Next
	if fail {
		s.failures++
		return errInjected // after committing: the answer was lost
	}
	return nil
}

// TestConsumeInOrderAcrossRebalancesAndFailures appends commands while a
// second consumer joins the group and the first one leaves, with commits
// failing now and then before or after they took effect. Every command is
// committed exactly once, each aggregate's commands in the order appended,
// and no partition ever has two batches in flight.
func TestConsumeInOrderAcrossRebalancesAndFailures(t *testing.T) {
	brokers := cluster(t).ListenAddrs()
	st := newMemStore()
	prefix := "consume" + randomName()
	open := func(assigned *atomic.Int32) *kafka.Log {
		logger := slog.New(&counting{msg: "kafka: partition assigned", n: assigned})
		l, err := kafka.New(context.Background(), enginetest.App(), kafka.Options{Brokers: brokers, Prefix: prefix,
			Partitions: 4, Offsets: st, MaxBatch: 16, SessionTimeout: time.Second, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	consume := func(l *kafka.Log) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.Consume(ctx, st.handle) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consume: %v", err)
			}
		}
	}
	var assignedA, assignedB atomic.Int32
	a, b := open(&assignedA), open(&assignedB)
	stopA := consume(a)
	const keys, each = 12, 60
	var stopB func()
	for i := range each {
		for k := range keys {
			id := fmt.Sprintf("k%d", k)
			cmd := plait.Command{ID: fmt.Sprintf("%s-%d", id, i), Type: "counter", AggregateID: id, Name: "add",
				Data: json.RawMessage(`{"by":1}`), CorrelationID: "c", User: "u", At: time.Now().UTC()}
			if err := a.Append(context.Background(), cmd, nil); err != nil {
				t.Fatal(err)
			}
		}
		switch i {
		case each / 3:
			stopB = consume(b) // a rebalance: b takes some partitions
			waitFor(t, func() bool { return assignedB.Load() > 0 })
		case 2 * each / 3:
			n := assignedB.Load()
			stopA() // another: b takes them all
			waitFor(t, func() bool { return assignedB.Load() > n })
		}
		time.Sleep(5 * time.Millisecond)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st.mu.Lock()
		n := len(st.handled)
		st.mu.Unlock()
		if n == keys*each {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d commands committed", n, keys*each)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopB()
	st.mu.Lock()
	defer st.mu.Unlock()
	for k := range keys {
		got := st.order[fmt.Sprintf("k%d", k)]
		for i, n := range got {
			if n != i {
				t.Fatalf("k%d committed in the order %v", k, got)
			}
		}
	}
	if st.overlap {
		t.Errorf("a partition had two batches in flight at once")
	}
	if st.failures == 0 {
		t.Errorf("no failure was injected")
	}
	t.Logf("%d commands, %d injected failures; partitions assigned: %d to a, %d to b", keys*each, st.failures, assignedA.Load(), assignedB.Load())
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// counting is a slog handler that counts the records with one message and
// drops every record.
type counting struct {
	msg string
	n   *atomic.Int32
}

func (c *counting) Enabled(context.Context, slog.Level) bool { return true }
func (c *counting) Handle(_ context.Context, r slog.Record) error {
	if r.Message == c.msg {
		c.n.Add(1)
	}
	return nil
}
func (c *counting) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *counting) WithGroup(string) slog.Handler      { return c }

// aheadOffsets is a store whose committed offsets lie beyond what the
// partitions hold, as after the topics were recreated or the brokers lost
// their last records.
type aheadOffsets struct{}

func (aheadOffsets) Offset(context.Context, string, int32) (int64, error) { return 100, nil }

// TestConsumeStopsWhenThePartitionLacksTheStoredOffset: a partition that
// does not hold the offset the store committed for it must not be read
// from its start with everything below that offset skipped — the commands
// appended there, acknowledged, would never be decided. Consume stops with
// an error that says why, and hands nothing.
func TestConsumeStopsWhenThePartitionLacksTheStoredOffset(t *testing.T) {
	c := cluster(t)
	l, err := kafka.New(context.Background(), enginetest.App(), kafka.Options{Brokers: c.ListenAddrs(), Prefix: randomName(),
		Partitions: 1, Offsets: aheadOffsets{}, SessionTimeout: time.Second, Logger: silent})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 5 {
		cmd := plait.Command{ID: fmt.Sprintf("c%d", i), Type: "counter", AggregateID: "k", Name: "add",
			Data: json.RawMessage(`{"by":1}`), CorrelationID: "c", User: "u", At: time.Now().UTC()}
		if err := l.Append(context.Background(), cmd, nil); err != nil {
			t.Fatal(err)
		}
	}
	var handed atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- l.Consume(context.Background(), func(_ context.Context, b engine.LogBatch) error {
			handed.Add(int64(len(b.Commands)))
			return nil
		})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "does not hold the offset the store committed") {
			t.Fatalf("Consume ended with %v, want the missing offset named", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Consume went on for 20 s over a partition without the stored offset")
	}
	if n := handed.Load(); n != 0 {
		t.Fatalf("%d commands handed from a partition read from where the store did not say", n)
	}
}

// levels is a slog handler that counts records by level, and notes their
// messages, and drops them.
type levels struct {
	mu   sync.Mutex
	n    map[slog.Level]int
	msgs []string
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.n[r.Level]++
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *levels) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levels) WithGroup(string) slog.Handler      { return l }

// onePartitionLog is a log of one partition on a cluster of its own, its
// offsets in st, closed at the test's end.
func onePartitionLog(t *testing.T, st kafka.OffsetSource, logger *slog.Logger) *kafka.Log {
	t.Helper()
	l, err := kafka.New(context.Background(), enginetest.App(), kafka.Options{Brokers: cluster(t).ListenAddrs(), Prefix: randomName(),
		Partitions: 1, Offsets: st, SessionTimeout: time.Second, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestALostRaceIsRetriedWithoutAnError: a commit that lost a race with
// another writer (any client can cause one, sending one command id to two
// partitions at once) is decided again, logged as a warning, not an
// error; and races lost again and again back off, rather than spin.
func TestALostRaceIsRetriedWithoutAnError(t *testing.T) {
	st := newMemStore()
	log := &levels{n: map[slog.Level]int{}}
	l := onePartitionLog(t, st, slog.New(log))
	const races = 4
	var mu sync.Mutex
	var calls []time.Time
	handle := func(ctx context.Context, b engine.LogBatch) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, time.Now())
		if len(calls) <= races {
			return fmt.Errorf("commit: %w", engine.ErrLostRace)
		}
		return nil
	}
	cmd := plait.Command{ID: "c1", Type: "counter", AggregateID: "k", Name: "add",
		Data: json.RawMessage(`{"by":1}`), CorrelationID: "c", User: "u", At: time.Now().UTC()}
	if err := l.Append(context.Background(), cmd, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Consume(ctx, handle) }()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) > races })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The first retry at once, the next after 50, 100 and 200 ms.
	if spun := calls[races].Sub(calls[1]); spun < 300*time.Millisecond {
		t.Errorf("races lost in a row were retried %d times in %s: no backoff", races-1, spun)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if log.n[slog.LevelError] != 0 || log.n[slog.LevelWarn] < races {
		t.Errorf("logged %d errors and %d warnings for %d lost races, want warnings only", log.n[slog.LevelError], log.n[slog.LevelWarn], races)
	}
}

// TestFailedBatchesAreLoggedOncePerOutage: a partition whose batches fail
// again and again (the store down) logs the failure once at ERROR, not at
// every retry, and once at INFO when a batch is handled again.
func TestFailedBatchesAreLoggedOncePerOutage(t *testing.T) {
	st := newMemStore()
	log := &levels{n: map[slog.Level]int{}}
	l := onePartitionLog(t, st, slog.New(log))
	const failures = 5
	var calls atomic.Int32
	handle := func(ctx context.Context, b engine.LogBatch) error {
		if calls.Add(1) <= failures {
			return errors.New("commit: failed to connect to `user=postgres database=test`: dial error")
		}
		return nil
	}
	cmd := plait.Command{ID: "c1", Type: "counter", AggregateID: "k", Name: "add",
		Data: json.RawMessage(`{"by":1}`), CorrelationID: "c", User: "u", At: time.Now().UTC()}
	if err := l.Append(context.Background(), cmd, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Consume(ctx, handle) }()
	waitFor(t, func() bool { return calls.Load() > failures })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if log.n[slog.LevelError] != 1 || !slices.Contains(log.msgs, "kafka: handling batches again") {
		t.Errorf("%d failed batches in a row logged %d errors, want 1, and the recovery: %q", failures, log.n[slog.LevelError], log.msgs)
	}
}
