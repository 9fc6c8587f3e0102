package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/plaithq/plait"
)

// slowFailingLog holds an Append until release is closed, then fails it,
// as a produce that times out.
type slowFailingLog struct{ entered, release chan struct{} }

func (l *slowFailingLog) Append(ctx context.Context, cmd plait.Command, sender *plait.User) error {
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
// instance had it decided, under the same id), and then the append fails.
// The command leaves its correlation's count of commands in flight once,
// so that another command of that correlation, still pending here, keeps
// a settled wait waiting.
func TestAFailedAppendWhoseOutcomeWasSeenCountsOnce(t *testing.T) {
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
	close(log.release)
	if err := <-done; err == nil {
		t.Fatal("the append did not fail")
	}
	if _, busy := e.whenIdle("K"); !busy {
		t.Fatal("correlation K counts no command in flight: the other, still pending, was counted out")
	}
}
