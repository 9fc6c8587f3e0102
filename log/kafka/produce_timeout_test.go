package kafka_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/log/kafka"
)

// TestAppendReturnsWithinProduceTimeoutWhenTheBrokerHoldsTheRecord: the
// broker takes the produce request and never answers it, as one that dies
// with the record in flight. The idempotent producer keeps waiting for it,
// but Append returns within about ProduceTimeout, with an error that says
// the command may be stored yet (engine.ErrUnconfirmed), not a refusal.
func TestAppendReturnsWithinProduceTimeoutWhenTheBrokerHoldsTheRecord(t *testing.T) {
	c := cluster(t)
	const timeout = time.Second
	l, err := kafka.New(context.Background(), enginetest.App(), kafka.Options{Brokers: c.ListenAddrs(), Prefix: randomName(),
		Partitions: 1, ProduceTimeout: timeout, Logger: silent})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd := plait.Command{ID: "c1", Type: "counter", AggregateID: "k", Name: "add",
		Data: json.RawMessage(`{"by":1}`), CorrelationID: "c1", User: "u", At: time.Now().UTC()}
	if err := l.Append(context.Background(), cmd, nil); err != nil {
		t.Fatal(err) // the producer knows the topic and the broker now
	}
	// Every produce request from now on is read and never answered.
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return nil, nil, true
	})
	cmd.ID, cmd.CorrelationID = "c2", "c2"
	start := time.Now()
	appended := make(chan error, 1)
	go func() { appended <- l.Append(context.Background(), cmd, nil) }()
	select {
	case err = <-appended:
	case <-time.After(timeout + time.Second):
		t.Fatalf("Append still waits %s after it was called, with ProduceTimeout %s", time.Since(start), timeout)
	}
	if err == nil {
		t.Fatal("Append succeeded though the broker never answered")
	}
	if !errors.Is(err, engine.ErrUnconfirmed) {
		t.Fatalf("Append's error does not say the command may be stored yet: %v", err)
	}
}

// oneEventFeed is a feed of one event, at position 1.
type oneEventFeed struct{}

func (oneEventFeed) ReadFeed(ctx context.Context, after int64, limit int) ([]engine.Item, error) {
	if after >= 1 {
		return nil, nil
	}
	ev := plait.Event{ID: "e1", Type: "counter", AggregateID: "k", Name: "added", Seq: 1, Data: json.RawMessage(`{"by":1}`),
		CausationID: "c1", CorrelationID: "c1", At: time.Now().UTC()}
	return []engine.Item{{Position: 1, Event: &ev}}, nil
}

// memCheckpoints keeps checkpoints in memory.
type memCheckpoints struct {
	mu  sync.Mutex
	pos map[string]int64
}

func (c *memCheckpoints) Checkpoint(ctx context.Context, name string) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pos[name], nil
}

func (c *memCheckpoints) SaveCheckpoint(ctx context.Context, name string, pos int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pos[name] = pos
	return nil
}

// alwaysLease grants the lease every time.
type alwaysLease struct{}

func (alwaysLease) TryLease(ctx context.Context, name string) (kafka.Lease, bool, error) {
	return heldLease{}, true, nil
}

type heldLease struct{}

func (heldLease) Check(context.Context) error { return nil }
func (heldLease) Release()                    {}

// TestPublisherGivesUpAPageWithinProduceTimeout: the broker takes the
// publisher's produce request and never answers it. The publisher gives
// the page up within about ProduceTimeout, and lets its lease go, rather
// than wait for as long as the broker keeps the request.
func TestPublisherGivesUpAPageWithinProduceTimeout(t *testing.T) {
	c := cluster(t)
	const timeout = time.Second
	logs := &levels{n: map[slog.Level]int{}}
	l, err := kafka.New(context.Background(), enginetest.App(), kafka.Options{Brokers: c.ListenAddrs(), Prefix: randomName(),
		Partitions: 1, ProduceTimeout: timeout, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return nil, nil, true
	})
	p := &kafka.Publisher{Log: l, Feed: oneEventFeed{}, Checkpoints: &memCheckpoints{pos: map[string]int64{}}, Leaser: alwaysLease{},
		Standby: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	defer func() {
		cancel()
		if !t.Failed() { // else it may be held for as long as the broker holds the request
			<-done
		}
	}()
	start := time.Now()
	for {
		logs.mu.Lock()
		stopped := slices.Contains(logs.msgs, "kafka publisher: stopped publishing; lease released")
		logs.mu.Unlock()
		if stopped {
			break
		}
		if time.Since(start) > timeout+2*time.Second {
			t.Fatalf("the publisher still waits for its page %s after it began, with ProduceTimeout %s", time.Since(start), timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
