package httpapi_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/httpapi"
)

// The personal data of the forgotten customer, unlike anything else the
// test writes.
const (
	forgetName  = "Xaviera Forgetful-Plum"
	forgetEmail = "xaviera.plum@forget.example"
)

// streamFrames reads the frames of a stream opened from the start of the
// feed until one with id at least upTo.
func streamFrames(t *testing.T, h *harness, tok string, upTo int64) string {
	t.Helper()
	s := h.openStream("", "Authorization", "Bearer "+tok, "Last-Event-ID", "0")
	var all strings.Builder
	for {
		f := s.next(t)
		all.WriteString(f.Data)
		all.WriteByte('\n')
		if f.ID >= upTo {
			break
		}
	}
	s.close()
	return all.String()
}

// TestForgetSubjectOverHTTP: POST /subjects/{subject}/forget is an admin
// operation; it answers problems for bad requests and changes nothing then;
// once it answered, the subject's personal fields read as erased through
// every read of the API — the aggregate, its history, the command's
// outcome, the lists and the relay — and asking again answers the same.
func TestForgetSubjectOverHTTP(t *testing.T) {
	h := start(t, orderdesk.PrivateApp(), httpapi.Options{}, false)
	admin, clerk := token(t, "root", httpapi.AdminRole), token(t, "clerk")
	created := h.post(clerk, "?wait=settled", cmd{"type": "customer", "aggregateId": "c1", "name": "create",
		"data": map[string]string{"name": forgetName, "email": forgetEmail}}, http.StatusOK)
	h.post(clerk, "?wait=settled", cmd{"type": "customer", "aggregateId": "c2", "name": "create",
		"data": map[string]string{"name": "Bob Stays", "email": "bob@example.com"}}, http.StatusOK)
	lines := []map[string]any{{"sku": "A", "qty": 1, "price": 10}}
	for o, c := range map[string]string{"o1": "c1", "o2": "c2"} {
		h.post(clerk, "?wait=settled", cmd{"type": "order", "aggregateId": o, "name": "place",
			"data": map[string]any{"customerId": c, "lines": lines, "currency": "EUR"}}, http.StatusOK)
	}
	cmdID, _ := created.json(t)["id"].(string)

	// Every read the test makes of what c1 left, as the given user (the
	// customerOrders view as the admin, who alone sees it).
	reads := func(tok string) map[string]reply {
		return map[string]reply{
			"aggregate":      h.do("GET", "/aggregates/customer/c1", tok, nil),
			"events":         h.do("GET", "/aggregates/customer/c1/events", tok, nil),
			"command":        h.do("GET", "/commands/"+cmdID, tok, nil),
			"customer list":  h.do("GET", "/lists/customer", tok, nil),
			"order list":     h.do("GET", "/lists/orderList", tok, nil),
			"customerOrders": h.do("GET", "/aggregates/customerOrders/c1", admin, nil), // the admin's alone
		}
	}
	holds := func(r reply, s string) bool { return strings.Contains(string(r.body), s) }
	head := h.e.Head()

	// Before: every read shows the data, so that the checks after can fail.
	for what, r := range reads(clerk) {
		if r.status != http.StatusOK {
			t.Fatalf("%s before forget: %s", what, r)
		}
		if what != "customerOrders" && !holds(r, forgetName) {
			t.Fatalf("%s before forget does not show the name: %s", what, r)
		}
	}
	if s := streamFrames(t, h, clerk, head); !strings.Contains(s, forgetName) || !strings.Contains(s, forgetEmail) {
		t.Fatalf("the relay before forget does not show c1's data:\n%s", s)
	}

	// Bad requests: answered with a problem, nothing forgotten.
	problem(t, h.do("POST", "/subjects/c1/forget", "", nil), http.StatusUnauthorized, "")
	problem(t, h.do("POST", "/subjects/c1/forget", "not a token", nil), http.StatusUnauthorized, "")
	problem(t, h.do("POST", "/subjects/c1/forget", clerk, nil), http.StatusForbidden, "")
	problem(t, h.do("POST", "/subjects/-c1/forget", admin, nil), http.StatusBadRequest, httpapi.CodeInvalidID)
	problem(t, h.do("POST", "/subjects/"+strings.Repeat("c", 129)+"/forget", admin, nil), http.StatusBadRequest, httpapi.CodeInvalidID)
	problem(t, h.do("POST", "/subjects/c%201/forget", admin, nil), http.StatusBadRequest, httpapi.CodeInvalidID)
	problem(t, h.do("POST", "/subjects/c1/forget?now=1", admin, nil), http.StatusBadRequest, "")
	problem(t, h.do("GET", "/subjects/c1/forget", admin, nil), http.StatusMethodNotAllowed, "")
	problem(t, h.do("DELETE", "/subjects/c1/forget", admin, nil), http.StatusMethodNotAllowed, "")
	if r := h.do("GET", "/aggregates/customer/c1", clerk, nil); !holds(r, forgetName) || !holds(r, forgetEmail) {
		t.Fatalf("c1 after refused forgets: %s", r)
	}
	// Until forgotten, a client's copy at the same seq is confirmed.
	if r := h.do("GET", "/aggregates/customer/c1", clerk, nil, "If-None-Match", `"1"`); r.status != http.StatusNotModified {
		t.Fatalf("c1 revalidated before the forget: %s", r)
	}

	// Forget, twice: the same answer.
	want := map[string]any{"subject": "c1", "items": []any{
		map[string]any{"type": orderdesk.CustomerOrdersType, "id": "c1"},
		map[string]any{"type": orderdesk.OrderListType, "id": "o1"},
	}}
	for i := range 2 {
		r := h.do("POST", "/subjects/c1/forget", admin, nil)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("forget #%d: %s", i+1, r)
		}
		if got := r.json(t); !reflect.DeepEqual(got, want) {
			t.Fatalf("forget #%d answered %v, want %v", i+1, got, want)
		}
	}

	// After: erased everywhere, Bob untouched.
	after := reads(clerk)
	for what, r := range after {
		if r.status != http.StatusOK {
			t.Fatalf("%s after forget: %s", what, r)
		}
		for _, s := range []string{forgetName, forgetEmail} {
			if holds(r, s) {
				t.Errorf("%s after forget still shows %q: %s", what, s, r)
			}
		}
	}
	var agg struct {
		State orderdesk.CustomerState `json:"state"`
	}
	if err := json.Unmarshal(after["aggregate"].body, &agg); err != nil {
		t.Fatal(err)
	}
	if agg.State.Name != engine.Erased || agg.State.Email != engine.Erased {
		t.Errorf("c1 after forget: %+v", agg.State)
	}
	// A client's copy from before has the same seq, and is not confirmed.
	beforeTag := `"1"`
	if r := h.do("GET", "/aggregates/customer/c1", clerk, nil, "If-None-Match", beforeTag); r.status != http.StatusOK ||
		!holds(r, engine.Erased) || r.header.Get("ETag") != beforeTag || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("c1 after forget, revalidated: %s %v", r, r.header)
	}
	for _, what := range []string{"events", "command", "order list"} {
		if !holds(after[what], engine.Erased) {
			t.Errorf("%s after forget does not read as erased: %s", what, after[what])
		}
	}
	if !holds(after["customer list"], "Bob Stays") || !holds(after["order list"], "Bob Stays") {
		t.Errorf("Bob was erased too: %s %s", after["customer list"], after["order list"])
	}
	s := streamFrames(t, h, clerk, head)
	if strings.Contains(s, forgetName) || strings.Contains(s, forgetEmail) {
		t.Errorf("the relay after forget still shows c1's data:\n%s", s)
	}
	if !strings.Contains(s, engine.Erased) || !strings.Contains(s, "Bob Stays") {
		t.Errorf("the relay after forget:\n%s", s)
	}

	// New data of the same subject is sealed under a new key and readable.
	h.post(clerk, "?wait=settled", cmd{"type": "customer", "aggregateId": "c1", "name": "rename",
		"data": map[string]string{"name": "Xaviera Again"}}, http.StatusOK)
	if r := h.do("GET", "/aggregates/customer/c1", clerk, nil); !holds(r, "Xaviera Again") || holds(r, forgetEmail) {
		t.Errorf("c1 renamed after forget: %s", r)
	}
}

// TestForgetSubjectWithoutPersonalData: an application that declares no
// personal data has no subject to forget.
func TestForgetSubjectWithoutPersonalData(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	problem(t, h.do("POST", "/subjects/c1/forget", token(t, "root", httpapi.AdminRole), nil), http.StatusNotFound, "")
}

// TestForgetSubjectLocally: a server without auth serves its single local
// user, who may forget; a stopped engine answers 503.
func TestForgetSubjectLocally(t *testing.T) {
	h := start(t, orderdesk.PrivateApp(), httpapi.Options{}, true)
	h.post("", "?wait=settled", cmd{"type": "customer", "aggregateId": "c1", "name": "create",
		"data": map[string]string{"name": forgetName, "email": forgetEmail}}, http.StatusOK)
	if r := h.do("POST", "/subjects/c1/forget", "", nil); r.status != http.StatusOK {
		t.Fatalf("local forget: %s", r)
	}
	if r := h.do("GET", "/aggregates/customer/c1", "", nil); strings.Contains(string(r.body), forgetName) {
		t.Errorf("c1 after a local forget: %s", r)
	}
	h.stopEngine()
	<-h.e.Done()
	problem(t, h.do("POST", "/subjects/c1/forget", "", nil), http.StatusServiceUnavailable, "")
}
