package plait_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/examples/orderdesk"
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

// A misspelt name in the wiring of reactors and indexes is refused at
// start, where it would otherwise skip events or leave a list unfiltered
// for ever.
func TestValidateRefusesWiringToNothing(t *testing.T) {
	type doc struct {
		Name string `json:"name"`
	}
	thing := func(opts ...plait.Option[doc]) *plait.Aggregate[doc] {
		return plait.NewAggregate("thing", append([]plait.Option[doc]{
			plait.Handle("set", func(s doc, c plait.Cmd[doc]) ([]plait.Change, error) { return nil, nil }),
			plait.Apply("named", func(s doc, e doc) doc { return e }),
		}, opts...)...)
	}
	nop := func(plait.Evt[doc]) []plait.Dispatch { return nil }
	for _, tc := range []struct {
		app  plait.App
		want string // "" when valid
	}{
		{plait.App{Name: "app", Aggregates: []plait.Definition{thing(plait.Indexed[doc]("name"))}}, ""},
		{plait.App{Name: "app", Aggregates: []plait.Definition{thing(plait.Indexed[doc]("nmae"))}}, `indexed field "nmae" is not a field of its state (name)`},
		{plait.App{Name: "app", Aggregates: []plait.Definition{thing()},
			Reactors: []*plait.Reactor{plait.NewReactor("feed", plait.On("thing", "named", nop))}}, ""},
		{plait.App{Name: "app", Aggregates: []plait.Definition{plait.NewAggregate("bag",
			plait.Handle("set", func(s map[string]any, c plait.Cmd[doc]) ([]plait.Change, error) { return nil, nil }),
			plait.Indexed[map[string]any]("anything"))}}, ""}, // a map has no fields to check
		{plait.App{Name: "app", Aggregates: []plait.Definition{thing()},
			Reactors: []*plait.Reactor{plait.NewReactor("feed", plait.On("thing", "nmaed", nop))}}, `reactor feed: subscribed to thing.nmaed, but thing has no event "nmaed" (its events: named)`},
		// Another application's events: not this one's to check.
		{plait.App{Name: "app", Aggregates: []plait.Definition{thing()},
			Reactors: []*plait.Reactor{plait.NewReactor("feed", plait.On("other", "whatever", nop))}}, ""},
	} {
		err := tc.app.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.app, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate = %v, want %q", err, tc.want)
		}
	}
}

// An index on a field holding a list or an object serves no list query.
func TestValidateRefusesAnIndexOnAListOrAnObject(t *testing.T) {
	type doc struct {
		Tags    []string          `json:"tags"`
		Address map[string]string `json:"address"`
	}
	for field, want := range map[string]string{"tags": "holds a list", "address": "holds an object"} {
		app := plait.App{Name: "app", Aggregates: []plait.Definition{plait.NewAggregate("thing",
			plait.Handle("set", func(s doc, c plait.Cmd[doc]) ([]plait.Change, error) { return nil, nil }),
			plait.Indexed[doc](field))}}
		if err := app.Validate(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("indexed field %q %s,", field, want)) {
			t.Errorf("Validate = %v, want %q", err, want)
		}
	}
}

// TestWarningsNameAReactorThatWouldSeeEmptyFields: a reactor decoding an
// event into a struct with fields the event's data has not (the data type
// of another event, here) would see them empty for ever, without an
// error: the application is warned of it. orderdesk, whose reactors read
// what they subscribe to, has no warning.
func TestWarningsNameAReactorThatWouldSeeEmptyFields(t *testing.T) {
	type opened struct {
		Title string `json:"title"`
	}
	type assigned struct {
		Agent string `json:"agent"`
	}
	type state struct {
		Title, Agent string
	}
	desk := plait.NewAggregate("case",
		plait.Handle("open", func(s state, c plait.Cmd[opened]) ([]plait.Change, error) { return nil, nil }),
		plait.Apply("opened", func(s state, e opened) state { s.Title = e.Title; return s }),
		plait.Apply("assigned", func(s state, e assigned) state { s.Agent = e.Agent; return s }),
	)
	list := plait.NewReactor("caseList",
		plait.On("case", "opened", func(e plait.Evt[opened]) []plait.Dispatch { return nil }),
		plait.On("case", "assigned", func(e plait.Evt[opened]) []plait.Dispatch { return nil }), // not assigned
	)
	app := plait.App{Name: "desk", Aggregates: []plait.Definition{desk}, Reactors: []*plait.Reactor{list}}
	if err := app.Validate(); err != nil {
		t.Fatal(err)
	}
	w := app.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "reactor caseList") || !strings.Contains(w[0], "case.assigned") || !strings.Contains(w[0], "title") {
		t.Fatalf("warnings %q, want one of caseList reading case.assigned's title", w)
	}
	if w := orderdesk.App().Warnings(); len(w) != 0 {
		t.Fatalf("orderdesk: %q", w)
	}
}

// A searchable field is one of the state's, of text, in the clear.
func TestValidateChecksSearchableFields(t *testing.T) {
	type doc struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
		Email string `json:"email"`
	}
	app := func(opts ...plait.Option[doc]) plait.App {
		return plait.App{Name: "app", Aggregates: []plait.Definition{plait.NewAggregate("thing", append([]plait.Option[doc]{
			plait.Handle("set", func(s doc, c plait.Cmd[doc]) ([]plait.Change, error) { return nil, nil }),
			plait.Personal[doc](plait.SubjectIsID, "email"),
		}, opts...)...)}}
	}
	if err := app(plait.Searchable[doc]("name")).Validate(); err != nil {
		t.Errorf("Validate of a searchable name: %v", err)
	}
	for field, want := range map[string]string{
		"nmae":      `searchable field "nmae" is not a field of its state (count, email, name)`,
		"count":     `searchable field "count" holds a number; a search is of text`,
		"email":     `searchable field "email" is personal data, stored sealed`,
		"a.b":       `searchable field "a.b" is not a plain name`,
		"name,name": `searchable field "name" named twice`,
	} {
		if err := app(plait.Searchable[doc](strings.Split(field, ",")...)).Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate with %s searchable = %v, want %q", field, err, want)
		}
	}
}

// An owner field is a field of the state, of text, in the clear, and
// decides something only with OwnerOnly.
func TestValidateChecksTheOwnerField(t *testing.T) {
	type doc struct {
		Assignee string `json:"assignee"`
		Count    int    `json:"count"`
		Email    string `json:"email"`
	}
	app := func(a plait.Access) plait.App {
		return plait.App{Name: "app", Aggregates: []plait.Definition{plait.NewAggregate("thing",
			plait.Handle("set", func(s doc, c plait.Cmd[doc]) ([]plait.Change, error) { return nil, nil }),
			plait.Personal[doc](plait.SubjectIsID, "email"),
			plait.WithAccess[doc](a),
		)}}
	}
	if err := app(plait.Access{OwnerOnly: true, OwnerField: "assignee"}).Validate(); err != nil {
		t.Errorf("Validate of an owner field: %v", err)
	}
	for _, tc := range []struct {
		access plait.Access
		want   string
	}{
		{plait.Access{OwnerOnly: true, OwnerField: "asignee"}, `owner field "asignee" is not a field of its state`},
		{plait.Access{OwnerOnly: true, OwnerField: "count"}, `owner field "count" holds a number`},
		{plait.Access{OwnerOnly: true, OwnerField: "email"}, `owner field "email" is personal data`},
		{plait.Access{OwnerField: "assignee"}, `owner field "assignee" without OwnerOnly`},
		{plait.Access{OwnerOnly: true, RolesOnly: true, OwnerField: "assignee"}, `without OwnerOnly (or with RolesOnly)`},
	} {
		if err := app(tc.access).Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate with %+v = %v, want %q", tc.access, err, tc.want)
		}
	}
}
