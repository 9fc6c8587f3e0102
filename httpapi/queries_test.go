package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/httpapi"
)

func TestAggregateWithETag(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	h.post(tok, "?wait=settled", cmd{"id": "l1", "type": "counter", "aggregateId": "a", "name": "label", "data": map[string]string{"label": "x"}}, http.StatusOK)
	r := h.do("GET", "/aggregates/counter/a", tok, nil)
	if r.status != 200 || r.header.Get("ETag") != `"2"` || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET: %s %v", r, r.header)
	}
	var agg struct {
		Type      string          `json:"type"`
		ID        string          `json:"id"`
		Seq       int64           `json:"seq"`
		State     json.RawMessage `json:"state"`
		Lineage   map[string]any  `json:"lineage"`
		UpdatedAt string          `json:"updatedAt"`
	}
	if err := json.Unmarshal(r.body, &agg); err != nil {
		t.Fatal(err)
	}
	if agg.Type != "counter" || agg.ID != "a" || agg.Seq != 2 || string(agg.State) != `{"count":1,"label":"X"}` || agg.UpdatedAt == "" || agg.Lineage != nil {
		t.Fatalf("body %s", r.body)
	}
	for _, inm := range []string{`"2"`, `W/"2"`, `"1", "2"`, `*`} {
		nm := h.do("GET", "/aggregates/counter/a", tok, nil, "If-None-Match", inm)
		if nm.status != http.StatusNotModified || len(nm.body) != 0 || nm.header.Get("ETag") != `"2"` {
			t.Fatalf("If-None-Match %s: %s", inm, nm)
		}
	}
	h.post(tok, "?wait=outcome", add("", "a", 1), http.StatusOK)
	if r := h.do("GET", "/aggregates/counter/a", tok, nil, "If-None-Match", `"2"`); r.status != 200 || r.header.Get("ETag") != `"3"` {
		t.Fatalf("after a change: %s %v", r, r.header)
	}
	// A view carries the lineage of its fields.
	tally := h.do("GET", "/aggregates/tally/a", tok, nil).json(t)
	l, _ := tally["lineage"].(map[string]any)["adds"].(map[string]any)
	if l["type"] != "counter" || l["aggregateId"] != "a" || l["seq"] == nil {
		t.Fatalf("tally lineage %v", tally["lineage"])
	}
	// A rebuild changes a view's state under its seq: it is always sent,
	// tagged with the seq it is at (the reactor may have moved it on since).
	tag := `"` + strconv.FormatFloat(tally["seq"].(float64), 'f', -1, 64) + `"`
	r = h.do("GET", "/aggregates/tally/a", tok, nil, "If-None-Match", tag)
	again := r.json(t)
	if r.status != 200 || r.header.Get("Cache-Control") != "no-store" ||
		r.header.Get("ETag") != `"`+strconv.FormatFloat(again["seq"].(float64), 'f', -1, 64)+`"` {
		t.Fatalf("a view revalidated: %s %v", r, r.header)
	}
	problem(t, h.do("GET", "/aggregates/counter/none", tok, nil), http.StatusNotFound, "")
	problem(t, h.do("GET", "/aggregates/nope/a", tok, nil), http.StatusNotFound, "")
	problem(t, h.do("GET", "/aggregates/counter/a", "", nil), http.StatusUnauthorized, "")
}

func TestEventsPaging(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	for i := 1; i <= 5; i++ {
		h.post(tok, "?wait=outcome", add(fmt.Sprintf("c%d", i), "a", i), http.StatusOK)
	}
	seqs := func(q string) []int64 {
		t.Helper()
		r := h.do("GET", "/aggregates/counter/a/events"+q, tok, nil)
		if r.status != 200 {
			t.Fatalf("events%s: %s", q, r)
		}
		var evs []plait.Event
		if err := json.Unmarshal(r.body, &evs); err != nil {
			t.Fatal(err)
		}
		out := []int64{}
		for _, ev := range evs {
			out = append(out, ev.Seq)
		}
		return out
	}
	for q, want := range map[string]string{
		"":                  "[1 2 3 4 5]",
		"?limit=2":          "[1 2]",
		"?after=2&limit=2":  "[3 4]",
		"?after=4":          "[5]",
		"?after=5":          "[]",
		"?after=99&limit=1": "[]",
	} {
		if got := fmt.Sprint(seqs(q)); got != want {
			t.Errorf("events%s = %s, want %s", q, got, want)
		}
	}
	// A full page links to the next; the last, short one does not.
	if r := h.do("GET", "/aggregates/counter/a/events?limit=2", tok, nil); r.header.Get("Link") != `</aggregates/counter/a/events?after=2&limit=2>; rel="next"` {
		t.Errorf("a full page's Link %q", r.header.Get("Link"))
	}
	for _, q := range []string{"?after=4&limit=2", "?after=3&limit=2"} {
		if r := h.do("GET", "/aggregates/counter/a/events"+q, tok, nil); r.header.Get("Link") != "" {
			t.Errorf("the last page's Link (%s) %q, want none", q, r.header.Get("Link"))
		}
	}
	if r := h.do("GET", "/aggregates/counter/a/events?after=5", tok, nil); string(r.body) != "[]\n" {
		t.Errorf("an empty page is %q, want []", r.body)
	}
	// An empty after is the first page; a limit over 1000 is 1000.
	for _, q := range []string{"?after=", "?limit=", "?limit=1001", "?after=&limit=1000000", "?limit=99999999999999999999"} {
		var evs []plait.Event
		r := h.do("GET", "/aggregates/counter/a/events"+q, tok, nil)
		if err := json.Unmarshal(r.body, &evs); r.status != http.StatusOK || err != nil || len(evs) != 5 {
			t.Errorf("events%s: %s", q, r)
		}
	}
	for _, q := range []string{"?after=-1", "?after=x", "?after=+1", "?limit=0", "?limit=-1", "?limit=two", "?limit=+5"} {
		problem(t, h.do("GET", "/aggregates/counter/a/events"+q, tok, nil), http.StatusBadRequest, "invalid")
		// A bad request is bad whether or not the instance exists.
		problem(t, h.do("GET", "/aggregates/counter/none/events"+q, tok, nil), http.StatusBadRequest, "invalid")
	}
	problem(t, h.do("GET", "/aggregates/counter/none/events", tok, nil), http.StatusNotFound, "")
}

// listPage is a decoded answer of GET /lists.
type listPage struct {
	Items []map[string]any `json:"items"`
	Next  *string          `json:"next"`
}

func (h *harness) list(tok, typ string, q url.Values) listPage {
	h.t.Helper()
	r := h.do("GET", "/lists/"+typ+"?"+q.Encode(), tok, nil)
	if r.status != 200 {
		h.t.Fatalf("list %s?%s: %s", typ, q.Encode(), r)
	}
	var p listPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func ids(p listPage) string {
	var s []string
	for _, it := range p.Items {
		s = append(s, it["id"].(string))
	}
	return fmt.Sprint(s)
}

func TestListFiltersSortsProjects(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	labels := map[string]string{"a": "apple", "b": "apricot", "c": "banana", "d": "cherry", "e": "avocado"}
	for id, l := range labels {
		h.post(tok, "?wait=outcome", cmd{"type": "counter", "aggregateId": id, "name": "label", "data": map[string]string{"label": l}}, http.StatusOK)
	}
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		h.post(tok, "?wait=outcome", add("", id, 10*(5-i)), http.StatusOK)
	}
	// count: a=51 b=41 c=31 d=21 e=11; label upper-cased.
	all := h.list(tok, "counter", url.Values{})
	if ids(all) != "[a b c d e]" || all.Next != nil {
		t.Fatalf("all = %s next %v", ids(all), all.Next)
	}
	if it := all.Items[0]; it["seq"] != float64(3) || it["count"] != float64(51) || it["label"] != "APPLE" {
		t.Fatalf("item %v", it)
	}
	cases := []struct {
		q    url.Values
		want string
	}{
		{url.Values{"prefix.label": {"AP"}}, "[a b]"},
		{url.Values{"prefix.label": {"A"}, "sort": {"-count"}}, "[a b e]"},
		{url.Values{"eq.count": {"31"}}, "[c]"},
		{url.Values{"eq.count": {"31.0"}}, "[c]"},
		{url.Values{"eq.label": {"31"}}, "[]"},
		{url.Values{"eq.label": {"CHERRY"}}, "[d]"},
		{url.Values{"eq.label": {"cherry"}}, "[]"},
		{url.Values{"sort": {"count"}}, "[e d c b a]"},
		{url.Values{"sort": {"-label"}}, "[d c e b a]"},
		{url.Values{"sort": {"-id"}}, "[e d c b a]"},
		{url.Values{"sort": {" count "}}, "[e d c b a]"},
		{url.Values{"sort": {" -label"}}, "[d c e b a]"},
		{url.Values{"prefix.label": {"A"}, "eq.count": {"41"}}, "[b]"},
		{url.Values{"eq.id": {"c"}}, "[c]"},
		{url.Values{"eq.id": {"C"}}, "[]"},
		{url.Values{"prefix.id": {"d"}, "sort": {"-count"}}, "[d]"},
		{url.Values{"prefix.id": {""}, "sort": {"-id"}}, "[e d c b a]"},
		{url.Values{"eq.id": {"b"}, "prefix.label": {"A"}}, "[b]"},
		{url.Values{"eq.id": {"b"}, "prefix.label": {"C"}}, "[]"},
	}
	for _, tc := range cases {
		if got := ids(h.list(tok, "counter", tc.q)); got != tc.want {
			t.Errorf("list ?%s = %s, want %s", tc.q.Encode(), got, tc.want)
		}
	}
	proj := h.list(tok, "counter", url.Values{"fields": {"label"}, "limit": {"1"}})
	if len(proj.Items) != 1 || len(proj.Items[0]) != 3 || proj.Items[0]["label"] != "APPLE" || proj.Items[0]["count"] != nil || proj.Next == nil {
		t.Fatalf("projection %v next %v", proj.Items, proj.Next)
	}
	// A cursor belongs to the order of the list that gave it.
	byLabel := h.list(tok, "counter", url.Values{"sort": {"label"}, "limit": {"2"}})
	if byLabel.Next == nil {
		t.Fatal("no next page by label")
	}
	h.list(tok, "counter", url.Values{"sort": {"label"}, "after": {*byLabel.Next}})
	for _, order := range []string{"-label", "count", "id"} {
		problem(t, h.do("GET", "/lists/counter?sort="+order+"&after="+*byLabel.Next, tok, nil), http.StatusBadRequest, "invalid")
	}
	// id and seq are in every item: naming them projects nothing more.
	proj = h.list(tok, "counter", url.Values{"fields": {"id,seq"}, "limit": {"1"}})
	if len(proj.Items) != 1 || len(proj.Items[0]) != 2 || proj.Items[0]["id"] != "a" || proj.Items[0]["seq"] == nil {
		t.Fatalf("projection of id and seq %v", proj.Items)
	}
	// An empty after is the first page, and a limit over 1000 asks for 1000.
	first := h.list(tok, "counter", url.Values{})
	for _, q := range []url.Values{{"after": {""}}, {"limit": {""}}, {"limit": {"5000"}}, {"limit": {"99999999999999999999"}}, {"after": {""}, "limit": {"1000000"}}} {
		if got := h.list(tok, "counter", q); ids(got) != ids(first) {
			t.Fatalf("list %v: %s, want %s", q, ids(got), ids(first))
		}
	}
	// An empty limit leaves the other parameters as they were.
	if got := h.list(tok, "counter", url.Values{"limit": {""}, "sort": {"-id"}}); ids(got) != "[e d c b a]" {
		t.Fatalf("list sorted by -id with an empty limit: %s", ids(got))
	}
	problem(t, h.do("GET", "/lists/counter?limit=&nope=1", tok, nil), http.StatusBadRequest, httpapi.CodeUnknownParameter)
	// Views list with their lineage.
	h.post(tok, "?wait=settled", add("", "a", 1), http.StatusOK)
	views := h.list(tok, "tally", url.Values{"eq.adds": {"3"}}) // a label adds 1 too
	if ids(views) != "[a]" || views.Items[0]["lineage"].(map[string]any)["adds"] == nil {
		t.Fatalf("tally list %v", views.Items)
	}
	// A projection gives exactly what it names: the lineage of its fields
	// only when lineage is named too.
	views = h.list(tok, "tally", url.Values{"eq.adds": {"3"}, "fields": {"adds"}})
	if len(views.Items) != 1 || len(views.Items[0]) != 3 || views.Items[0]["adds"] != float64(3) {
		t.Fatalf("tally list projected to adds: %v, want id, seq and adds", views.Items)
	}
	views = h.list(tok, "tally", url.Values{"eq.adds": {"3"}, "fields": {"adds, lineage"}})
	if len(views.Items) != 1 || len(views.Items[0]) != 4 || views.Items[0]["lineage"].(map[string]any)["adds"] == nil {
		t.Fatalf("tally list projected to adds and lineage: %v", views.Items)
	}
	// Lineage alone: every field's, and no field of the state.
	views = h.list(tok, "tally", url.Values{"eq.adds": {"3"}, "fields": {"lineage"}})
	if len(views.Items) != 1 || len(views.Items[0]) != 3 || views.Items[0]["lineage"].(map[string]any)["adds"] == nil {
		t.Fatalf("tally list projected to its lineage: %v, want id, seq and the lineage of adds", views.Items)
	}

	bad := []struct {
		q    string
		code string
	}{
		{"eq.nope=1", httpapi.CodeUnknownFieldName},
		{"prefix.=1", httpapi.CodeUnknownFieldName},
		{"gt.count=1", httpapi.CodeUnknownOperator},
		{"like.label=a", httpapi.CodeUnknownOperator},
		{"search.label=a", httpapi.CodeNotSearchable}, // counter declares no searchable field
		{"search.id=a", httpapi.CodeNotSearchable},
		{"sort=nope", httpapi.CodeUnknownFieldName},
		{"sort=count&sort=label", "invalid"},
		{"fields=label,nope", httpapi.CodeUnknownFieldName},
		{"fields=", httpapi.CodeUnknownFieldName},
		{"limit=0", "invalid"},
		{"limit=-1", "invalid"},
		{"limit=x", "invalid"},
		{"limit=+5", "invalid"},
		{"after=not-a-cursor", "invalid"},
		{"after=" + url.QueryEscape("eyJ2IjpbMV0sImkiOiJhIn0"), "invalid"}, // {"v":[1],"i":"a"}
		{"filter=count", httpapi.CodeUnknownParameter},
		{"count=1", httpapi.CodeUnknownParameter},
		{"eq.count=%zz", "invalid"},
		{"eq.count=1;limit=2", "invalid"},
		{"eq.count=abc", "invalid"},
		{"eq.count=true", "invalid"},
		{"eq.count=Inf", "invalid"},
		{"prefix.count=1", "invalid"},
		{"fields=count,lineage", httpapi.CodeUnknownFieldName}, // counter is no view: no lineage
	}
	for _, tc := range bad {
		problem(t, h.do("GET", "/lists/counter?"+tc.q, tok, nil), http.StatusBadRequest, tc.code)
	}
	problem(t, h.do("GET", "/lists/nope", tok, nil), http.StatusNotFound, "")
	// An empty sort or fields says how to ask for the default.
	for q, want := range map[string]string{"sort=": "leave sort out", "fields=": "leave fields out"} {
		if p := problem(t, h.do("GET", "/lists/counter?"+q, tok, nil), http.StatusBadRequest, httpapi.CodeUnknownFieldName); !strings.Contains(fmt.Sprint(p["errors"]), want) {
			t.Errorf("%s: %v, want it to say %q", q, p, want)
		}
	}
}

// TestListFiltersSealedFieldsByTheirOpenedValues: a personal field is
// stored sealed, so a list cannot sort on it (that would order
// ciphertexts) and says so naming the field; eq and prefix filters compare
// the opened values, and a page of them goes on where the last ended.
func TestListFiltersSealedFieldsByTheirOpenedValues(t *testing.T) {
	h := start(t, orderdesk.App(), httpapi.Options{}, false)
	tok := token(t, "ann")
	for id, c := range map[string][2]string{"c1": {"Ann", "ann@example.com"}, "c2": {"Bob", "bob@example.com"}} {
		h.post(tok, "?wait=materialized", cmd{"type": "customer", "aggregateId": id, "name": "create",
			"data": map[string]string{"name": c[0], "email": c[1]}}, http.StatusOK)
	}
	for _, tc := range []struct{ q, path string }{
		{"sort=email", "sort"},
		{"sort=-email", "sort"},
		{"eq.name=Ann&sort=email", "sort"},
	} {
		p := problem(t, h.do("GET", "/lists/customer?"+tc.q, tok, nil), http.StatusBadRequest, httpapi.CodeSealedField)
		e := p["errors"].([]any)[0].(map[string]any)
		if e["path"] != tc.path || !strings.Contains(e["message"].(string), "email is personal data") {
			t.Errorf("?%s: error %v, want path %q naming email", tc.q, e, tc.path)
		}
	}
	for q, want := range map[string]string{
		"eq.email=ann@example.com":               "[c1]",
		"eq.email=ann":                           "[]",
		"prefix.email=bob@":                      "[c2]",
		"prefix.email=":                          "[c1 c2]",
		"eq.email=bob@example.com&prefix.name=B": "[c2]",
		"eq.email=bob@example.com&eq.name=Ann":   "[]",
	} {
		v, _ := url.ParseQuery(q)
		if got := ids(h.list(tok, "customer", v)); got != want {
			t.Errorf("?%s: %s, want %s", q, got, want)
		}
	}
	// Projected without the field filtered on, the items lack it.
	page := h.list(tok, "customer", url.Values{"eq.email": {"ann@example.com"}, "fields": {"name"}})
	if len(page.Items) != 1 || page.Items[0]["name"] != "Ann" || page.Items[0]["email"] != nil {
		t.Fatalf("eq.email with fields=name: %v", page.Items)
	}
	page = h.list(tok, "customer", url.Values{"fields": {"email"}, "eq.name": {"Ann"}})
	if len(page.Items) != 1 || page.Items[0]["email"] != "ann@example.com" || page.Items[0]["name"] != nil {
		t.Fatalf("projection of the sealed field: %v", page.Items)
	}
	if got := ids(h.list(tok, "customer", url.Values{"sort": {"-name"}})); got != "[c2 c1]" {
		t.Fatalf("sort by a plain field = %s", got)
	}
	// Pages of a filter that matches one item in seven, over more items
	// than one read of the store takes, hold every match once, in order.
	var want []string
	for i := range 600 {
		id := fmt.Sprintf("p%03d", i)
		email := fmt.Sprintf("n%03d@example.com", i)
		if i%7 == 3 {
			email = fmt.Sprintf("seven%03d@example.com", i)
			want = append(want, id)
		}
		h.post(tok, "", cmd{"type": "customer", "aggregateId": id, "name": "create",
			"data": map[string]string{"name": "P", "email": email}}, http.StatusAccepted)
	}
	h.post(tok, "?wait=materialized", cmd{"type": "customer", "aggregateId": "last", "name": "create",
		"data": map[string]string{"name": "P", "email": "last@example.com"}}, http.StatusOK)
	var got []string
	after := ""
	for range 100 {
		page := h.list(tok, "customer", url.Values{"prefix.email": {"seven"}, "limit": {"9"}, "after": {after}})
		if len(page.Items) > 9 {
			t.Fatalf("a page of %d items, limit 9", len(page.Items))
		}
		for _, it := range page.Items {
			got = append(got, it["id"].(string))
		}
		if page.Next == nil {
			break
		}
		after = *page.Next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged through prefix.email=seven: %v, want %v", got, want)
	}
}

// TestListFiltersPersonalCopies: under PrivateApp an order list item
// holds its customer's name sealed, as copied; the view declares it
// (plait.PersonalCopies), so the list refuses to sort on it as on the
// customer's own field, filters on its opened value and projects it
// opened.
func TestListFiltersPersonalCopies(t *testing.T) {
	h := start(t, orderdesk.PrivateApp(), httpapi.Options{}, false)
	tok := token(t, "ann")
	h.post(tok, "?wait=settled", cmd{"type": "customer", "aggregateId": "c1", "name": "create",
		"data": map[string]string{"name": "Ann", "email": "ann@example.com"}}, http.StatusOK)
	for o, qty := range map[string]int{"o1": 1, "o2": 3} {
		h.post(tok, "?wait=settled", cmd{"type": "order", "aggregateId": o, "name": "place",
			"data": map[string]any{"customerId": "c1", "lines": []map[string]any{{"sku": "A", "qty": qty, "price": 2}}}}, http.StatusOK)
	}
	for _, tc := range []struct{ q, path string }{
		{"sort=customerName", "sort"},
		{"sort=-customerName", "sort"},
	} {
		p := problem(t, h.do("GET", "/lists/orderList?"+tc.q, tok, nil), http.StatusBadRequest, httpapi.CodeSealedField)
		e := p["errors"].([]any)[0].(map[string]any)
		if e["path"] != tc.path || !strings.Contains(e["message"].(string), "customerName is personal data") {
			t.Errorf("?%s: error %v, want path %q naming customerName", tc.q, e, tc.path)
		}
	}
	for q, want := range map[string]string{
		"eq.customerName=Ann":                 "[o1 o2]",
		"prefix.customerName=A&sort=-total":   "[o2 o1]",
		"prefix.customerName=B":               "[]",
		"eq.customerName=Ann&eq.status=other": "[]",
	} {
		v, _ := url.ParseQuery(q)
		if got := ids(h.list(tok, "orderList", v)); got != want {
			t.Errorf("?%s: %s, want %s", q, got, want)
		}
	}
	page := h.list(tok, "orderList", url.Values{"fields": {"customerName"}, "sort": {"-total"}})
	if got := ids(page); got != "[o2 o1]" || page.Items[0]["customerName"] != "Ann" || page.Items[1]["customerName"] != "Ann" {
		t.Fatalf("projection of the copied field, sorted by total: %s %v", got, page.Items)
	}
}

// TestListSearchesAsideFromCaseAndAccents: search.F=v finds the items
// whose F starts with v, their plait.SearchKeys compared, by the index of
// a searchable field, or by reading the list for a sealed one, in pages.
func TestListSearchesAsideFromCaseAndAccents(t *testing.T) {
	for _, tc := range []struct {
		name string
		app  plait.App
	}{{"App", orderdesk.App()}, {"PrivateApp", orderdesk.PrivateApp()}} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, tc.app, httpapi.Options{}, false)
			tok := token(t, "ann")
			for id, c := range map[string][2]string{
				"c1": {"Ann Smith", "ann@example.com"}, "c2": {"anna", "ANNA@example.com"},
				"c3": {"Zoë", "zoe@example.com"}, "c4": {"Bob", "bob@example.com"},
			} {
				h.post(tok, "?wait=settled", cmd{"type": "customer", "aggregateId": id, "name": "create",
					"data": map[string]string{"name": c[0], "email": c[1]}}, http.StatusOK)
			}
			h.post(tok, "?wait=settled", cmd{"type": "order", "aggregateId": "o1", "name": "place",
				"data": map[string]any{"customerId": "c3", "lines": []map[string]any{{"sku": "A", "qty": 1, "price": 2}}}}, http.StatusOK)
			for q, want := range map[string]string{
				"search.name=ann":                  "[c1 c2]",
				"search.name=ANNA":                 "[c2]",
				"search.name=ann%20s":              "[c1]",
				"search.name=zoe":                  "[c3]",
				"search.name=ZO%C3%8B":             "[c3]",
				"search.name=x":                    "[]",
				"search.name=":                     "[c1 c2 c3 c4]",
				"search.email=anna@":               "[c2]",
				"search.name=an&eq.email=nobody@x": "[]",
			} {
				v, _ := url.ParseQuery(q)
				if got := ids(h.list(tok, "customer", v)); got != want {
					t.Errorf("customer?%s: %s, want %s", q, got, want)
				}
			}
			if got := ids(h.list(tok, "orderList", url.Values{"search.customerName": {"ZOE"}})); got != "[o1]" {
				t.Errorf("orderList?search.customerName=ZOE: %s, want [o1]", got)
			}
			var got []string
			for after := ""; ; {
				page := h.list(tok, "customer", url.Values{"search.name": {"AN"}, "limit": {"1"}, "after": {after}})
				for _, it := range page.Items {
					got = append(got, it["id"].(string))
				}
				if page.Next == nil {
					break
				}
				after = *page.Next
			}
			if fmt.Sprint(got) != "[c1 c2]" {
				t.Errorf("paged through search.name=AN: %v, want [c1 c2]", got)
			}
		})
	}
}

// TestListPaginationIsStableUnderWrites pages through a list while other
// commands change the listed instances and create new ones: every instance
// that existed before the first page shows exactly once, in order.
func TestListPaginationIsStableUnderWrites(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	const n = 60
	before := map[string]bool{}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("k%03d", 2*i)
		h.post(tok, "?wait=outcome", cmd{"type": "counter", "aggregateId": id, "name": "label", "data": map[string]string{"label": fmt.Sprintf("L%03d", i)}}, http.StatusOK)
		before[id] = true
	}
	for _, sort := range []string{"", "label", "-label"} {
		t.Run("sort="+sort, func(t *testing.T) {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var writes atomic.Int64
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					// Change existing instances, and insert between them.
					h.do("POST", "/commands", tok, add("", fmt.Sprintf("k%03d", 2*(i%n)), 1))
					h.do("POST", "/commands", tok, cmd{"type": "counter", "aggregateId": fmt.Sprintf("k%03d-%s%d", 2*(i%n)+1, sort, i), "name": "label", "data": map[string]string{"label": fmt.Sprintf("L%03d-new", i%n)}})
					writes.Add(2)
				}
			}()
			seen := map[string]bool{}
			var order []string
			q := url.Values{"limit": {"7"}}
			if sort != "" {
				q.Set("sort", sort)
			}
			for pages := 0; ; pages++ {
				p := h.list(tok, "counter", q)
				for _, it := range p.Items {
					id := it["id"].(string)
					if seen[id] {
						t.Fatalf("%s listed twice", id)
					}
					seen[id] = true
					order = append(order, it["label"].(string)+"\x00"+id)
				}
				if p.Next == nil {
					break
				}
				q.Set("after", *p.Next)
				if pages > 1000 {
					t.Fatal("pagination does not end")
				}
			}
			close(stop)
			wg.Wait()
			for id := range before {
				if !seen[id] {
					t.Fatalf("%s was missed", id)
				}
			}
			if writes.Load() == 0 {
				t.Fatal("no writes happened while paging")
			}
			sorted := append([]string(nil), order...)
			switch sort {
			case "label":
				sortStrings(sorted, false)
			case "-label":
				sortStrings(sorted, true)
			default:
				sorted = nil
			}
			if sorted != nil && fmt.Sprint(sorted) != fmt.Sprint(order) {
				t.Fatalf("items out of order:\n%v", order)
			}
		})
	}
}

func sortStrings(s []string, desc bool) {
	sort.Slice(s, func(i, j int) bool {
		if desc {
			return s[i] > s[j]
		}
		return s[i] < s[j]
	})
}

// TestOrderdeskUsersSeeWhatTheyMaySee: in orderdesk a customer is its
// creator's, an order too, and so is the order's list item; the
// customerOrders view, which holds every user's order ids, is the admin's
// alone; an admin sees everything. The rules hold through GET
// /aggregates, /lists and /commands and the relay, and a command on
// another user's customer or order is refused. An order may name another
// user's customer, but its list item does not show that customer's name.
func TestOrderdeskUsersSeeWhatTheyMaySee(t *testing.T) {
	h := start(t, orderdesk.App(), httpapi.Options{}, false)
	ann, bob, admin := token(t, "ann"), token(t, "bob"), token(t, "root", orderdesk.AdminRole)
	h.post(ann, "?wait=settled", cmd{"type": "customer", "aggregateId": "c1", "name": "create",
		"data": map[string]string{"name": "Annes Customer", "email": "c1@example.com"}}, http.StatusOK)
	placed := h.post(ann, "?wait=settled", cmd{"type": "order", "aggregateId": "o1", "name": "place",
		"data": map[string]any{"customerId": "c1", "lines": []map[string]any{{"sku": "A", "qty": 1, "price": 2}}}}, http.StatusOK)
	h.post(bob, "?wait=settled", cmd{"type": "customer", "aggregateId": "c2", "name": "create",
		"data": map[string]string{"name": "Bobs Customer", "email": "c2@example.com"}}, http.StatusOK)
	// bob may place an order naming ann's customer, though not see or
	// rename it; ann renames it.
	h.post(bob, "?wait=settled", cmd{"type": "order", "aggregateId": "ob", "name": "place",
		"data": map[string]any{"customerId": "c1", "lines": []map[string]any{{"sku": "B", "qty": 2, "price": 3}}}}, http.StatusOK)
	problem(t, h.do("POST", "/commands?wait=outcome", bob, cmd{"type": "customer", "aggregateId": "c1", "name": "rename",
		"data": map[string]string{"name": "Bobs Name For It"}}), http.StatusForbidden, httpapi.CodeForbidden)
	h.post(ann, "?wait=settled", cmd{"type": "customer", "aggregateId": "c1", "name": "rename",
		"data": map[string]string{"name": "Annes Renamed Customer"}}, http.StatusOK)
	annCmd, _ := placed.json(t)["id"].(string)

	type who struct {
		name, tok string
	}
	everyone := []who{{"ann", ann}, {"bob", bob}, {"admin", admin}}
	for _, c := range []struct {
		path string
		sees map[string]bool
	}{
		{"/aggregates/customer/c1", map[string]bool{"ann": true, "admin": true}},
		{"/aggregates/customer/c1/events", map[string]bool{"ann": true, "admin": true}},
		{"/aggregates/customer/c2", map[string]bool{"bob": true, "admin": true}},
		{"/aggregates/order/o1", map[string]bool{"ann": true, "admin": true}},
		{"/aggregates/order/o1/events", map[string]bool{"ann": true, "admin": true}},
		{"/aggregates/orderList/o1", map[string]bool{"ann": true, "admin": true}},
		{"/aggregates/orderList/ob", map[string]bool{"bob": true, "admin": true}},
		{"/aggregates/customerOrders/c1", map[string]bool{"admin": true}},
		{"/commands/" + annCmd, map[string]bool{"ann": true, "admin": true}},
	} {
		for _, u := range everyone {
			want := http.StatusNotFound
			if c.sees[u.name] {
				want = http.StatusOK
			}
			if r := h.do("GET", c.path, u.tok, nil); r.status != want {
				t.Errorf("GET %s as %s: %s, want %d", c.path, u.name, r, want)
			}
		}
	}
	for _, c := range []struct{ tok, typ, want string }{
		{ann, "customer", "[c1]"}, {bob, "customer", "[c2]"}, {admin, "customer", "[c1 c2]"},
		{ann, "orderList", "[o1]"}, {bob, "orderList", "[ob]"}, {admin, "orderList", "[o1 ob]"},
		{ann, "customerOrders", "[]"}, {bob, "customerOrders", "[]"}, {admin, "customerOrders", "[c1 c2]"},
	} {
		if got := ids(h.list(c.tok, c.typ, nil)); got != c.want {
			t.Errorf("GET /lists/%s: %s, want %s", c.typ, got, c.want)
		}
	}
	// ann's item shows her customer's name as renamed; bob's, naming the
	// customer he may not see, shows none.
	for _, it := range h.list(admin, "orderList", nil).Items {
		want := map[any]string{"o1": "Annes Renamed Customer", "ob": ""}[it["id"]]
		if it["customerName"] != want {
			t.Errorf("list item %v, want customerName %q", it, want)
		}
	}
	problem(t, h.do("POST", "/commands?wait=outcome", bob, cmd{"type": "order", "aggregateId": "o1", "name": "cancel",
		"data": map[string]string{"reason": "not mine"}}), http.StatusForbidden, httpapi.CodeForbidden)
	if r := h.do("GET", "/aggregates/order/o1", ann, nil); !strings.Contains(string(r.body), `"placed"`) {
		t.Fatalf("o1 after bob's refused cancel: %s", r)
	}
	// The last item is one bob and the admin see (no reactor reacts to
	// it), so that their streams reach the head.
	h.post(bob, "?wait=settled", cmd{"type": "customer", "aggregateId": "c2", "name": "changeEmail",
		"data": map[string]string{"email": "new@example.com"}}, http.StatusOK)
	// bob's stream has his list item and his customer, and nothing of
	// ann's customer: not its email, not its names.
	frames := streamFrames(t, h, bob, h.e.Head())
	if strings.Contains(frames, `"o1"`) || strings.Contains(frames, `"customerOrders"`) || strings.Contains(frames, "c1@example.com") ||
		strings.Contains(frames, "Annes") || !strings.Contains(frames, `"ob"`) || !strings.Contains(frames, "c2@example.com") {
		t.Fatalf("bob's stream:\n%s", frames)
	}
	if frames := streamFrames(t, h, admin, h.e.Head()); !strings.Contains(frames, `"customerOrders"`) || !strings.Contains(frames, `"o1"`) {
		t.Fatalf("the admin's stream lacks frames:\n%s", frames)
	}
}

// Audit is a state with a plain field that happens to be called lineage.
type Audit struct {
	Lineage string `json:"lineage"`
	Note    string `json:"note"`
}

// Lineage in fields of a type that is no view is a 400, whoever asks, even
// one who sees no instance of it; but a type with a field named lineage
// projects it.
func TestListLineageOfATypeThatIsNoView(t *testing.T) {
	app := enginetest.App()
	onlyAuditors := plait.Access{RolesOnly: true, SeeAllRoles: []string{"auditor"}}
	app.Aggregates = append(app.Aggregates,
		plait.NewAggregate("audit",
			plait.Handle("log", func(s Audit, c plait.Cmd[Audit]) ([]plait.Change, error) { return nil, nil }),
			plait.WithAccess[Audit](onlyAuditors)),
		plait.NewAggregate("memo",
			plait.Handle("log", func(s Note, c plait.Cmd[Note]) ([]plait.Change, error) { return nil, nil }),
			plait.WithAccess[Note](onlyAuditors)))
	h := start(t, app, httpapi.Options{}, false)
	if r := h.do("GET", "/lists/audit?fields=lineage,note", token(t, "bob", "auditor"), nil); r.status != http.StatusOK {
		t.Errorf("fields=lineage,note of a field named lineage: %s", r)
	}
	for _, tok := range []string{token(t, "ann"), token(t, "bob", "auditor")} {
		problem(t, h.do("GET", "/lists/memo?fields=lineage", tok, nil), http.StatusBadRequest, httpapi.CodeUnknownFieldName)
	}
}

// TestListManyFilters: a list query may repeat a filter, but not without
// bound: a thousand of them made the store's SQL too deep for SQLite, a
// 503 "the store cannot be reached" and an error in the log that any user
// could cause at will. Past the bound it is the client's 400.
func TestListManyFilters(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	h.post(tok, "?wait=settled", cmd{"id": "l1", "type": "counter", "aggregateId": "a", "name": "label", "data": map[string]string{"label": "x"}}, http.StatusOK)
	few := url.Values{}
	for i := range 20 {
		few.Add("prefix.label", strings.Repeat("x", i%2))
	}
	if r := h.do("GET", "/lists/counter?"+few.Encode(), tok, nil); r.status != http.StatusOK {
		t.Fatalf("20 filters: %s", r)
	}
	for _, n := range []int{101, 1200, 5000} {
		q := url.Values{}
		for i := range n {
			q.Add("eq.label", "v"+strconv.Itoa(i))
		}
		problem(t, h.do("GET", "/lists/counter?"+q.Encode(), tok, nil), http.StatusBadRequest, httpapi.CodeInvalidParam)
	}
}
