package orderdesk_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/plaithq/plait/examples/orderdesk"
)

func TestTheAppIsWellFormed(t *testing.T) {
	app := orderdesk.App()
	if err := app.Validate(); err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string]struct {
		view     bool
		commands []string
		indexes  []string
		fields   []string
	}{
		"customer": {false, []string{"changeEmail", "create", "rename"}, []string{"name", "email"},
			[]string{"email", "name"}},
		"order": {false, []string{"cancel", "place", "ship"}, []string{"customerId", "status", "placedAt"},
			[]string{"currency", "customerId", "lines", "placedAt", "status", "total"}},
		"orderList": {true, []string{"setCustomerName", "setOrder", "setStatus"}, []string{"customerName", "status", "placedAt", "total"},
			[]string{"currency", "customerName", "lines", "placedAt", "status", "total"}},
		"customerOrders": {true, []string{"addOrder", "setName"}, nil,
			[]string{"name", "nameSource", "orderIds", "orderOwners", "owner"}},
	} {
		def, ok := app.Definition(typ)
		if !ok {
			t.Errorf("no aggregate type %s", typ)
			continue
		}
		s := def.Settings()
		if s.View != want.view || !slices.Equal(def.Commands(), want.commands) || !slices.Equal(s.Indexes, want.indexes) {
			t.Errorf("%s: view %v, commands %v, indexes %v; want %v, %v, %v",
				typ, s.View, def.Commands(), s.Indexes, want.view, want.commands, want.indexes)
		}
		if !slices.Equal(s.Fields, want.fields) {
			t.Errorf("%s: state fields %v, want %v", typ, s.Fields, want.fields)
		}
	}
}

func TestReactorsSubscribeToEventsThatExist(t *testing.T) {
	app := orderdesk.App()
	for _, r := range app.Reactors {
		for _, key := range r.Subscriptions() {
			typ, name, _ := strings.Cut(key, ".")
			def, ok := app.Definition(typ)
			events, hasEvents := def.(interface{ Events() []string })
			if !ok || !hasEvents || !slices.Contains(events.Events(), name) {
				t.Errorf("reactor %s subscribes to %s, which no aggregate type of the app emits", r.Name(), key)
			}
		}
	}
}
