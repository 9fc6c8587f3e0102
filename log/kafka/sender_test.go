package kafka

import (
	"reflect"
	"testing"

	"github.com/plaithq/plait"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A command record carries its sender, so that the instance deciding it
// applies the access rules again; the engine's own commands carry none.
func TestACommandRecordCarriesItsSender(t *testing.T) {
	cmd := plait.Command{ID: "c1", Type: "doc", AggregateID: "d1", Name: "write", CorrelationID: "c1"}
	for _, sender := range []*plait.User{{ID: "bob", Roles: []string{"clerk", "admin"}}, {ID: "ann"}, nil} {
		rec, err := commandRecord("commands", cmd, sender)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeSender(rec)
		if err != nil {
			t.Fatal(err)
		}
		if sender != nil && sender.Roles == nil {
			sender = &plait.User{ID: sender.ID} // no roles, as decoded
		}
		if (got == nil) != (sender == nil) || (got != nil && (got.ID != sender.ID || !reflect.DeepEqual(got.Roles, sender.Roles))) {
			t.Errorf("sender %+v came back as %+v", sender, got)
		}
	}
	bad := &kgo.Record{Headers: []kgo.RecordHeader{{Key: senderHeader, Value: []byte(`{"roles":["admin"]}`)}}}
	if u, err := decodeSender(bad); err == nil {
		t.Errorf("a sender without an id decoded as %+v", u)
	}
}
