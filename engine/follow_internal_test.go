package engine

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/internal/syncbuf"
)

// downStore is a Store whose feed fails to be read while down is set, as
// while PostgreSQL is down, and is empty otherwise.
type downStore struct {
	Store
	down  atomic.Bool
	reads atomic.Int32
}

func (s *downStore) ReadFeed(ctx context.Context, after int64, limit int) ([]Item, error) {
	s.reads.Add(1)
	if s.down.Load() {
		return nil, errors.New("failed to connect to `user=postgres database=test`: dial error")
	}
	return nil, nil
}

// TestFollowBacksOffWhileTheStoreIsDown: while the feed cannot be read,
// follow reads it less and less often (not every followInterval) and logs
// the outage once, at ERROR with the error; once the store answers again
// it logs that, once, at INFO with how long it failed.
func TestFollowBacksOffWhileTheStoreIsDown(t *testing.T) {
	st := &downStore{}
	st.down.Store(true)
	var out syncbuf.Buffer
	e := &Engine{store: st, nudge: newBroadcast(), settle: newBroadcast(), tail: newTail(0, 16),
		log: slog.New(slog.NewJSONHandler(&out, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.follow(ctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(1500 * time.Millisecond)
	if n := st.reads.Load(); n > 12 {
		t.Errorf("the feed was read %d times in 1.5 s while the store was down: no backoff", n)
	}
	if n := strings.Count(out.String(), `"level":"ERROR"`); n != 1 {
		t.Errorf("the outage was logged %d times at ERROR, want once:\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "dial error") {
		t.Errorf("the outage's log has not its error:\n%s", out.String())
	}
	st.down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), `"level":"INFO"`) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	logs := out.String()
	if n := strings.Count(logs, `"level":"INFO"`); n != 1 || !strings.Contains(logs, `"failed_for":"`) {
		t.Errorf("the end of the outage was logged %d times at INFO, want once, saying how long it lasted:\n%s", n, logs)
	}
}

// oldEventStore is a Store whose feed holds one event in its first
// version.
type oldEventStore struct {
	Store
	reads atomic.Int32
}

func (s *oldEventStore) ReadFeed(ctx context.Context, after int64, limit int) ([]Item, error) {
	s.reads.Add(1)
	if after > 0 {
		return nil, nil
	}
	ev := plait.Event{ID: "e1", Type: "note", AggregateID: "n1", Seq: 1, Name: "written", Version: 1, Data: []byte(`{"text":"x"}`)}
	return []Item{{Position: 1, Event: &ev}}, nil
}

// TestFollowSaysWhenAnEventCannotBeUpcast: an event the upcasters fail on
// stops the feed there, and the log says so, not that the store is down.
func TestFollowSaysWhenAnEventCannotBeUpcast(t *testing.T) {
	k := evKey{"note", "written"}
	up := &upcasters{current: map[evKey]int{k: 2}, steps: map[evKey][]func(json.RawMessage) (json.RawMessage, error){
		k: {func(json.RawMessage) (json.RawMessage, error) { return nil, errors.New("no text field in version 1") }},
	}}
	st := &oldEventStore{}
	var out syncbuf.Buffer
	e := &Engine{store: wrapStore(st, up, nil), nudge: newBroadcast(), settle: newBroadcast(), tail: newTail(0, 16),
		log: slog.New(slog.NewJSONHandler(&out, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.follow(ctx) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(5 * time.Second)
	for st.reads.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	logs := out.String()
	if !strings.Contains(logs, "an event cannot be upcast") || !strings.Contains(logs, "no text field in version 1") || strings.Contains(logs, "does not answer") {
		t.Errorf("the log does not say the event cannot be upcast:\n%s", logs)
	}
	if h := e.tail.headPos(); h != 0 {
		t.Errorf("the feed moved on to %d past the event it cannot read", h)
	}
}
