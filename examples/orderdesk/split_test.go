package orderdesk_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/plaithq/plait/examples/orderdesk"
)

// TestCoreAndListsAreOrderdeskSplitInTwo checks that the two applications
// are valid, own disjoint types, and together are the whole of orderdesk,
// and that the lists' reactors read only the two applications' types.
func TestCoreAndListsAreOrderdeskSplitInTwo(t *testing.T) {
	core, lists, whole := orderdesk.Core(), orderdesk.Lists(), orderdesk.App()
	for _, a := range []struct {
		name string
		err  error
	}{{core.Name, core.Validate()}, {lists.Name, lists.Validate()}} {
		if a.err != nil {
			t.Fatalf("%s: %v", a.name, a.err)
		}
	}
	if core.Name == lists.Name || core.Name == whole.Name || lists.Name == whole.Name {
		t.Fatalf("names %s, %s, %s: want three, one consumer group each", core.Name, lists.Name, whole.Name)
	}
	types := func(names ...[]string) []string { return slices.Sorted(slices.Values(slices.Concat(names...))) }
	var coreTypes, listsTypes, wholeTypes []string
	for _, d := range core.Aggregates {
		coreTypes = append(coreTypes, d.Type())
		if d.Settings().View {
			t.Errorf("core has the view %s", d.Type())
		}
	}
	for _, d := range lists.Aggregates {
		listsTypes = append(listsTypes, d.Type())
		if !d.Settings().View {
			t.Errorf("lists has the aggregate %s, not a view", d.Type())
		}
	}
	for _, d := range whole.Aggregates {
		wholeTypes = append(wholeTypes, d.Type())
	}
	if got, want := types(coreTypes, listsTypes), types(wholeTypes); !slices.Equal(got, want) {
		t.Fatalf("core + lists types %v, want orderdesk's %v", got, want)
	}
	if len(core.Reactors) != 0 || len(lists.Reactors) != len(whole.Reactors) {
		t.Fatalf("reactors: core %d, lists %d; want none and orderdesk's %d", len(core.Reactors), len(lists.Reactors), len(whole.Reactors))
	}
	for _, r := range lists.Reactors {
		for _, key := range r.Subscriptions() {
			typ, _, _ := strings.Cut(key, ".")
			if !slices.Contains(coreTypes, typ) && !slices.Contains(listsTypes, typ) {
				t.Errorf("reactor %s reads %s, of neither application", r.Name(), key)
			}
		}
	}
}
