package enginetest

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// RunOwnerFieldDeclaredLater runs, against the stores newStore makes, each
// fresh and empty, the contract of an owner field declared on a type that
// has instances already: EnsureIndexes gives them the owners their states
// name, once, and lists by owner find them so.
func RunOwnerFieldDeclaredLater(t *testing.T, newStore func(t *testing.T) IndexingStore) {
	ctx := context.Background()
	st := newStore(t)
	w := &viewWriter{st: st} // every record by "u", its first sender
	w.put(t, "desk", "d1", `{"assignee":"ann"}`)
	w.put(t, "desk", "d2", `{"assignee":""}`)
	w.put(t, "desk", "d3", `{"assignee":7}`)
	w.put(t, "desk", "d4", `{}`)
	owners := func() map[string]string {
		t.Helper()
		got := map[string]string{}
		for _, id := range []string{"d1", "d2", "d3", "d4"} {
			in, err := st.Load(ctx, "desk", id)
			if err != nil {
				t.Fatal(err)
			}
			got[id] = in.Owner
		}
		return got
	}
	if got := owners(); got["d1"] != "u" {
		t.Fatalf("before the owner field, owners %v, want the first sender's", got)
	}
	// Owner only, with no owner field: the owners stay.
	plain := plait.NewAggregate("desk", plait.WithAccess[desk](plait.Access{OwnerOnly: true}))
	if err := st.EnsureIndexes(ctx, []plait.Definition{plain}); err != nil {
		t.Fatal(err)
	}
	if got := owners(); got["d1"] != "u" {
		t.Fatalf("without an owner field, owners %v, want the first sender's", got)
	}
	if err := st.EnsureIndexes(ctx, deskApp().Aggregates); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"d1": "ann", "d2": "", "d3": "", "d4": ""}
	if got := owners(); !maps.Equal(got, want) {
		t.Fatalf("after the owner field, owners %v, want %v", got, want)
	}
	page, err := st.List(ctx, "desk", engine.ListQuery{Owner: "ann"})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != "d1" {
		t.Fatalf("ann's desks: %v, %v", page.Items, err)
	}
}

// FormerOwners reads the first 100 items of feed and returns its events,
// each as "causationID:formerOwner", joined by spaces: what a store keeps
// of the owners the events took their instances from.
func FormerOwners(t testing.TB, feed engine.Feed) string {
	t.Helper()
	items, err := feed.ReadFeed(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		if it.Event != nil {
			got = append(got, it.Event.CausationID+":"+it.FormerOwner)
		}
	}
	return strings.Join(got, " ")
}
