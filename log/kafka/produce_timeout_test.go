package kafka_test

import (
	"context"
	"encoding/json"
	"errors"
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
	err = l.Append(context.Background(), cmd, nil)
	took := time.Since(start)
	if err == nil {
		t.Fatal("Append succeeded though the broker never answered")
	}
	if took > timeout+time.Second {
		t.Fatalf("Append returned after %s, with ProduceTimeout %s: %v", took, timeout, err)
	}
	if !errors.Is(err, engine.ErrUnconfirmed) {
		t.Fatalf("Append's error does not say the command may be stored yet: %v", err)
	}
}
