package kafka_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait/log/kafka"
)

// heldLeases is a Leaser whose lease another instance always holds; it
// counts the asks.
type heldLeases struct{ asks atomic.Int32 }

func (l *heldLeases) TryLease(context.Context, string) (kafka.Lease, bool, error) {
	l.asks.Add(1)
	return nil, false, nil
}

// TestARetiringPublisherTakesNoLease: a publisher standing by whose
// instance is stopping (Retiring closed) asks for the lease no more and
// returns, though its context lives on for the drain.
func TestARetiringPublisherTakesNoLease(t *testing.T) {
	l := onePartitionLog(t, newMemStore(), slog.New(slog.DiscardHandler))
	// Standing by, it reads neither the feed nor the checkpoints.
	leaser := &heldLeases{}
	retiring := make(chan struct{})
	p := &kafka.Publisher{Log: l, Leaser: leaser, Standby: time.Hour, Retiring: retiring}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	deadline := time.Now().Add(5 * time.Second)
	for leaser.asks.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the publisher never asked for the lease")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(retiring)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a retiring publisher standing by goes on")
	}
	if n := leaser.asks.Load(); n != 1 {
		t.Fatalf("%d asks for the lease, want the one before retiring", n)
	}
}
