package plait_test

import (
	"strings"
	"testing"

	"github.com/plaithq/plait"
)

// TestIndexNamesMayNotCollide: the stores name a field's index after its
// type and field joined by _, so a_b.c and a.b_c would share one, and one
// field would go unindexed. The application is refused instead.
func TestIndexNamesMayNotCollide(t *testing.T) {
	type doc struct {
		C  string `json:"c"`
		BC string `json:"b_c"`
	}
	handle := plait.Handle("set", func(s doc, c plait.Cmd[doc]) ([]plait.Change, error) { return nil, nil })
	app := plait.App{Name: "app", Aggregates: []plait.Definition{
		plait.NewAggregate("a_b", handle, plait.Indexed[doc]("c")),
		plait.NewAggregate("a", handle, plait.Indexed[doc]("b_c")),
	}}
	if err := app.Validate(); err == nil || !strings.Contains(err.Error(), "would have one name, a_b_c") {
		t.Fatalf("Validate of colliding index names: %v", err)
	}
	app.Aggregates[1] = plait.NewAggregate("a", handle, plait.Indexed[doc]("c"))
	if err := app.Validate(); err != nil {
		t.Fatalf("Validate of distinct index names: %v", err)
	}
}
