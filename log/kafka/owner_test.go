package kafka_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/log/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTopicsOfAnotherApplicationAreRefused: an application whose events
// topics (its prefix shared with another's) hold events another
// application published is refused before it consumes anything, saying to
// give it a prefix of its own; its own events, and topics with none, are
// fine.
func TestTopicsOfAnotherApplicationAreRefused(t *testing.T) {
	c := cluster(t)
	prefix := randomName()
	app := enginetest.App() // "contract": counter and tally
	open := func(app plait.App) error {
		l, err := kafka.New(context.Background(), app, kafka.Options{Brokers: c.ListenAddrs(), Prefix: prefix,
			Partitions: 2, Offsets: aheadOffsets{}, SessionTimeout: time.Second, Logger: silent})
		if err == nil {
			l.Close()
		}
		return err
	}
	if err := open(app); err != nil {
		t.Fatalf("topics with no events: %v", err)
	}
	produce := func(source string, partition int32) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		rec := &kgo.Record{Topic: prefix + ".counter.events", Partition: partition, Value: []byte(`{"by":1}`),
			Headers: []kgo.RecordHeader{{Key: "ce_source", Value: []byte(source)}}}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce("/contract/counter/k1", 0)
	if err := open(app); err != nil {
		t.Fatalf("topics with the application's own events: %v", err)
	}
	produce("/orderdesk/counter/k2", 1)
	produce("/contract/counter/k3", 0)
	err := open(app)
	if !errors.Is(err, engine.ErrOtherApplication) || !strings.Contains(err.Error(), `holds the events of application "orderdesk", not "contract"`) ||
		!strings.Contains(err.Error(), "--topic-prefix of its own") {
		t.Fatalf("topics with another application's events: %v", err)
	}
}
