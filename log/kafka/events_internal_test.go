package kafka

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/plaithq/plait"
)

// TestEventRecordReadsBack checks that an event the publisher puts on an
// events topic reads back, for the reactors, as the same event.
func TestEventRecordReadsBack(t *testing.T) {
	l := &Log{app: plait.App{Name: "shop"}, opts: Options{Prefix: "shop"}}
	at := time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC)
	for _, ev := range []plait.Event{
		{ID: "c1.0", Type: "order", AggregateID: "o-1", Seq: 3, Name: "placed", Data: json.RawMessage(`{"total":12.5}`),
			CorrelationID: "c0", CausationID: "c1", User: "ann", At: at, Position: 42, Version: 2},
		{ID: "r9.1", Type: "orderList", AggregateID: "o-1", Seq: 1, Name: "statusSet", Data: json.RawMessage(`{"status":"placed"}`),
			CorrelationID: "c0", CausationID: "r9", User: "ann", At: at, Position: 43,
			Lineage: map[string]plait.Lineage{"status": {Type: "order", AggregateID: "o-1", Seq: 3}}},
	} {
		rec := l.eventRecord(ev)
		rec.Partition, rec.Offset = 2, 7
		if want := "shop." + ev.Type + ".events"; rec.Topic != want {
			t.Fatalf("topic %s, want %s", rec.Topic, want)
		}
		got, err := decodeEvent(rec)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Fatalf("read back\n%+v\nwant\n%+v", got, ev)
		}
	}
	// A record that is not an event is refused with where it was.
	_, err := decodeEvent(l.eventRecord(plait.Event{ID: "x", Type: "order", AggregateID: "o", Name: "placed"}))
	if err == nil {
		t.Fatal("an event without seq decoded")
	}
}
