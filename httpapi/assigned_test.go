package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/httpapi"
)

// caseFile is a case that belongs to whoever it is assigned to.
type caseFile struct {
	Title    string `json:"title"`
	Assignee string `json:"assignee"`
}

type assign struct {
	To string `json:"to"`
}

// journal is a log of the cases opened, its creator's alone.
type journal struct {
	Entries int `json:"entries"`
}

// caseDesk is an application of cases: opened, a case is its opener's;
// assigned, the assignee's; unassigned, no agent's. A supervisor sees all.
// Every case opened is noted in the journal "main", by a reactor.
func caseDesk() plait.App {
	return plait.App{Name: "cases", Aggregates: []plait.Definition{plait.NewAggregate("journal",
		plait.Handle("note", func(s journal, c plait.Cmd[struct{}]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("noted", struct{}{})}, nil
		}),
		plait.Apply("noted", func(s journal, _ struct{}) journal { s.Entries++; return s }),
		plait.WithAccess[journal](plait.Access{OwnerOnly: true}),
	), plait.NewAggregate("case",
		plait.Handle("open", func(s caseFile, c plait.Cmd[caseFile]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("opened", caseFile{Title: c.Data.Title, Assignee: c.User})}, nil
		}),
		plait.Handle("assign", func(s caseFile, c plait.Cmd[assign]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("assigned", c.Data)}, nil
		}),
		plait.Apply("opened", func(_ caseFile, e caseFile) caseFile { return e }),
		plait.Apply("assigned", func(s caseFile, e assign) caseFile { s.Assignee = e.To; return s }),
		plait.WithAccess[caseFile](plait.Access{OwnerOnly: true, OwnerField: "assignee", SeeAllRoles: []string{"supervisor"}}),
	)}, Reactors: []*plait.Reactor{plait.NewReactor("journalist", plait.On("case", "opened", func(e plait.Evt[caseFile]) []plait.Dispatch {
		return []plait.Dispatch{plait.Send("journal", "main", "note", struct{}{})}
	}))}}
}

// TestAnInstanceBelongsToWhomItsOwnerFieldNames: with an OwnerField, a
// case is seen and acted on by the agent it is assigned to, and no longer
// by the one it was assigned to before; unassigned, by supervisors only.
// The agent who assigns it away still gets their command's outcome.
func TestAnInstanceBelongsToWhomItsOwnerFieldNames(t *testing.T) {
	h := start(t, caseDesk(), httpapi.Options{}, false)
	ann, bob, sue := token(t, "ann"), token(t, "bob"), token(t, "sue", "supervisor")
	sees := func(tok, who string, want bool) {
		t.Helper()
		r := h.do("GET", "/aggregates/case/k1", tok, nil)
		if got := r.status == http.StatusOK; got != want {
			t.Errorf("%s sees case k1: %v (%s), want %v", who, got, r, want)
		}
		page := h.list(tok, "case", url.Values{})
		if got := ids(page) == "[k1]"; got != want {
			t.Errorf("%s lists %s, want k1 listed: %v", who, ids(page), want)
		}
		if r := h.do("GET", "/aggregates/case/k1/events", tok, nil); (r.status == http.StatusOK) != want {
			t.Errorf("%s reads the events of k1: %s, want %v", who, r, want)
		}
	}
	// Bob's journal, which the reactor notes every case in.
	h.post(bob, "?wait=materialized", cmd{"type": "journal", "aggregateId": "main", "name": "note", "data": map[string]string{}}, http.StatusOK)
	from := strconv.FormatInt(h.e.Head(), 10)
	bobStream := h.openStream("?types=case&lastEventId="+from, "Authorization", "Bearer "+bob)
	annStream := h.openStream("?types=case&lastEventId="+from, "Authorization", "Bearer "+ann)

	h.post(ann, "?wait=settled", cmd{"id": "open", "type": "case", "aggregateId": "k1", "name": "open", "data": map[string]string{"title": "Printer"}}, http.StatusOK)
	// The reactor's command carries ann as its user, on bob's journal:
	// not hers to see, though she can work out its id.
	if r := h.do("GET", "/commands/"+plait.ReactionID("journalist", plait.EventID("open", 0), 0), ann, nil); r.status != http.StatusNotFound {
		t.Errorf("ann asks for the reactor's command on bob's journal: %s, want 404", r)
	}
	sees(ann, "ann", true)
	sees(bob, "bob", false)
	sees(sue, "sue", true)

	r := h.post(ann, "?wait=materialized", cmd{"id": "give", "type": "case", "aggregateId": "k1", "name": "assign", "data": map[string]string{"to": "bob"}}, http.StatusOK)
	if !strings.Contains(string(r.body), `"accepted"`) {
		t.Fatalf("ann's assignment answered %s", r)
	}
	sees(ann, "ann, once the case is bob's", false)
	sees(bob, "bob", true)
	sees(sue, "sue", true)
	if r := h.do("GET", "/commands/give", ann, nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"accepted"`) {
		t.Errorf("ann asks for the outcome of her assignment: %s", r)
	}
	// Ann may no longer act on it: it is not hers to see.
	if r := h.do("POST", "/commands?wait=outcome", ann, cmd{"type": "case", "aggregateId": "k1", "name": "assign", "data": map[string]string{"to": "ann"}}); r.status == http.StatusOK {
		t.Errorf("ann took back bob's case: %s", r)
	}
	// Bob's stream brings him the event that made the case his and its
	// outcome, and nothing of the case before; ann's the case's frames until then,
	// the event that took it from her and the outcome of her assignment.
	if got := frameNames(t, bobStream, 2); got != "event give, outcome give" {
		t.Errorf("bob's frames: %s", got)
	}
	if got := frameNames(t, annStream, 4); got != "event open, outcome open, event give, outcome give" {
		t.Errorf("ann's frames: %s", got)
	}

	h.post(sue, "?wait=materialized", cmd{"id": "drop", "type": "case", "aggregateId": "k1", "name": "assign", "data": map[string]string{"to": ""}}, http.StatusOK)
	sees(bob, "bob, once the case is no one's", false)
	sees(ann, "ann", false)
	sees(sue, "sue", true)
	// Bob learns that the case left him by the event that took it, but
	// not the outcome of sue's command; ann, nothing of it.
	if got := frameNames(t, bobStream, 1); got != "event drop" {
		t.Errorf("bob's frame once sue took the case from him: %s", got)
	}
	// A stream resumed from before reads the same frames again.
	if got := frameNames(t, h.openStream("?types=case&lastEventId="+from, "Authorization", "Bearer "+bob), 3); got != "event give, outcome give, event drop" {
		t.Errorf("bob's frames, resumed: %s", got)
	}
	if got := frameNames(t, h.openStream("?types=case&lastEventId="+from, "Authorization", "Bearer "+ann), 4); got != "event open, outcome open, event give, outcome give" {
		t.Errorf("ann's frames, resumed: %s", got)
	}
	// Then nothing more: ann's next frame is her own next command's.
	h.post(ann, "?wait=outcome", cmd{"id": "next", "type": "case", "aggregateId": "k2", "name": "open", "data": map[string]string{"title": "Fax"}}, http.StatusOK)
	if got := frameNames(t, annStream, 2); got != "event next, outcome next" {
		t.Errorf("ann's frames after sue's: %s", got)
	}
}

// frameNames reads n frames of s, each named by its kind and the id of
// the command it comes from.
func frameNames(t *testing.T, s *sseStream, n int) string {
	t.Helper()
	var names []string
	for range n {
		f := s.next(t)
		var v struct {
			ID          string `json:"id"`
			CausationID string `json:"causationId"`
		}
		if err := json.Unmarshal([]byte(f.Data), &v); err != nil {
			t.Fatalf("frame %+v: %v", f, err)
		}
		id := v.ID
		if f.Event == "event" {
			id = v.CausationID
		}
		names = append(names, f.Event+" "+id)
	}
	return strings.Join(names, ", ")
}
