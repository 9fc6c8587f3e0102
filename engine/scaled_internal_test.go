package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
)

// slowFailingLog holds its first Append until release is closed, then
// fails it, as a produce that times out; the appends after it succeed.
type slowFailingLog struct {
	entered, release chan struct{}
	calls            atomic.Int32
}

func (l *slowFailingLog) Append(ctx context.Context, cmd plait.Command, sender *plait.User) error {
	if l.calls.Add(1) > 1 {
		return nil
	}
	close(l.entered)
	<-l.release
	return errors.New("produce timed out")
}

func (l *slowFailingLog) Consume(ctx context.Context, handle func(context.Context, LogBatch) error) error {
	<-ctx.Done()
	return nil
}

// TestAFailedAppendWhoseOutcomeWasSeenCountsOnce: scaled out, while an
// append of a command hangs, its outcome shows in the feed (another
// instance had it decided, under the same id), the same id is appended
// again, and then the first append fails. It is counted out of its
// correlation once, and in its own stead: the correlation's other command
// and the second append stay pending, and keep a settled wait waiting.
func TestAFailedAppendCountsOutItselfOnce(t *testing.T) {
	log := &slowFailingLog{entered: make(chan struct{}), release: make(chan struct{})}
	e := &Engine{running: true, corrInflight: map[string]int{}, corrIdle: map[string]chan struct{}{},
		appended: map[string]*appendedCmd{}, waiters: map[string][]chan plait.Outcome{}}
	e.opts.CommandLog = log
	pending := plait.Command{ID: "other", Type: "t", AggregateID: "b", CorrelationID: "K"}
	e.mu.Lock()
	e.appended[pending.ID] = &appendedCmd{cmd: pending, n: 1}
	e.corrInflight["K"]++
	e.mu.Unlock()

	cmd := plait.Command{ID: "c1", Type: "t", AggregateID: "a", CorrelationID: "K"}
	done := make(chan error, 1)
	go func() { done <- e.appendToLog(context.Background(), cmd, nil, e.outcomesSeen()) }()
	<-log.entered
	e.outcomeSeen(plait.Outcome{Command: cmd, Status: plait.StatusAccepted, Position: 7})
	// The same id appended again, and pending here, before the first
	// append fails.
	if err := e.appendToLog(context.Background(), cmd, nil, e.outcomesSeen()); err != nil {
		t.Fatal(err)
	}
	close(log.release)
	if err := <-done; err == nil {
		t.Fatal("the append did not fail")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if n := e.corrInflight["K"]; n != 2 {
		t.Fatalf("correlation K counts %d commands in flight, want 2: the other, and c1 appended again", n)
	}
	if a := e.appended["c1"]; a == nil || a.n != 1 {
		t.Fatalf("c1's second append is not pending: %+v", a)
	}
}

// TestWaitSettledWakesWhenTheCorrelationsLastCommandIsDone: a settled wait
// begun while a command of its correlation is in flight returns when that
// command is done, though nothing is published and no checkpoint moves.
func TestWaitSettledWakesWhenTheCorrelationsLastCommandIsDone(t *testing.T) {
	e := &Engine{settle: newBroadcast(), corrInflight: map[string]int{"K": 1}, corrIdle: map[string]chan struct{}{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.WaitSettled(ctx, "K") }()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("WaitSettled returned %v while a command of its correlation was in flight", err)
	default:
	}
	e.mu.Lock()
	e.corrDoneLocked("K", 1)
	e.mu.Unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("WaitSettled was not woken when the command was done")
	}
}

// TestACommandIDInTwoPartitionsIsNotCommittedTwiceInOneGroup: the group
// commit holds back a batch whose command id another batch of the group
// holds (a client sent one id to two aggregates): in one transaction the
// two would fail each other every time they were decided again.
func TestACommandIDInTwoPartitionsIsNotCommittedTwiceInOneGroup(t *testing.T) {
	batch := func(ids ...string) *logCommit {
		c := &logCommit{}
		for _, id := range ids {
			c.procs = append(c.procs, &Processed{Outcome: plait.Outcome{Command: plait.Command{ID: id}}})
		}
		return c
	}
	a, b, c, d := batch("c1", "c2"), batch("c3"), batch("c2"), batch("c4")
	group, held := apartByCommand([]*logCommit{a, b, c, d})
	if len(group) != 3 || group[0] != a || group[1] != b || group[2] != d || len(held) != 1 || held[0] != c {
		t.Fatalf("group %v, held %v: want a, b and d, then c", group, held)
	}
	// The leader's batch goes whatever it holds.
	if group, held := apartByCommand([]*logCommit{c, a}); len(group) != 1 || group[0] != c || len(held) != 1 || held[0] != a {
		t.Fatalf("group %v, held %v: want c, then a", group, held)
	}
}
