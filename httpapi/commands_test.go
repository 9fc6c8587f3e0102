package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/httpapi"
)

func TestPostCommandAnswers202WithLocation(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	r := h.post(tok, "", add("c1", "a", 2), http.StatusAccepted)
	body := r.json(t)
	if body["id"] != "c1" || body["status"] != "pending" || len(body) != 2 {
		t.Fatalf("body %s, want {id:c1, status:pending}", r.body)
	}
	if loc := r.header.Get("Location"); loc != "/commands/c1" {
		t.Fatalf("Location %q", loc)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	got := h.do("GET", "/commands/c1", tok, nil)
	if got.status != 200 || got.json(t)["status"] != "accepted" {
		t.Fatalf("GET /commands/c1: %s", got)
	}

	// A missing id is assigned, and the Location follows it.
	r = h.post(tok, "", add("", "a", 1), http.StatusAccepted)
	id, _ := r.json(t)["id"].(string)
	if id == "" || r.header.Get("Location") != "/commands/"+id {
		t.Fatalf("assigned id %q, Location %q", id, r.header.Get("Location"))
	}
	if got := h.do("GET", "/commands/"+id, tok, nil); got.json(t)["status"] != "accepted" {
		t.Fatalf("GET assigned: %s", got)
	}
}

func TestSameIDTwiceYieldsOneOutcome(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	first := h.post(tok, "?wait=outcome", add("same", "a", 5), http.StatusOK)
	again := h.post(tok, "?wait=outcome", add("same", "a", 5), http.StatusOK)
	other := h.post(tok, "?wait=outcome", add("same", "a", 9), http.StatusOK) // the id decides
	if string(first.body) != string(again.body) || string(first.body) != string(other.body) {
		t.Fatalf("outcomes differ:\n%s\n%s\n%s", first.body, again.body, other.body)
	}
	h.post(tok, "", add("same", "a", 5), http.StatusAccepted)
	agg := h.do("GET", "/aggregates/counter/a", tok, nil).json(t)
	if agg["seq"] != float64(1) || agg["state"].(map[string]any)["count"] != float64(5) {
		t.Fatalf("aggregate %v, want one add of 5", agg)
	}
	// Concurrent resubmits, too.
	var wg sync.WaitGroup
	bodies := make([]string, 8)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", h.ts.URL+"/commands?wait=outcome", strings.NewReader(`{"id":"conc","type":"counter","aggregateId":"b","name":"add","data":{"by":1}}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := h.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			b, _ := json.Marshal(m)
			bodies[i] = string(b)
		}()
	}
	wg.Wait()
	for _, b := range bodies {
		if b != bodies[0] {
			t.Fatalf("concurrent resubmits answered differently: %s vs %s", b, bodies[0])
		}
	}
	if agg := h.do("GET", "/aggregates/counter/b", tok, nil).json(t); agg["seq"] != float64(1) {
		t.Fatalf("counter b at seq %v, want 1", agg["seq"])
	}
}

func TestWaitOutcomeAnswers200WithEvents(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	r := h.post(tok, "?wait=outcome", cmd{"id": "l1", "type": "counter", "aggregateId": "a", "name": "label", "data": map[string]string{"label": "hi"}}, http.StatusOK)
	var body struct {
		ID     string        `json:"id"`
		Status string        `json:"status"`
		Events []plait.Event `json:"events"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.ID != "l1" || body.Status != "accepted" || len(body.Events) != 2 {
		t.Fatalf("body %s", r.body)
	}
	for i, ev := range body.Events {
		if ev.Seq != int64(i+1) || ev.CausationID != "l1" || ev.CorrelationID != "l1" || ev.User != "ann" || ev.Position == 0 {
			t.Fatalf("event %d = %+v", i, ev)
		}
	}
	if body.Events[0].Name != "labelled" || string(body.Events[0].Data) != `{"label":"HI"}` {
		t.Fatalf("first event %+v", body.Events[0])
	}
}

func TestWaitMaterializedShowsInState(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	for i := 1; i <= 5; i++ {
		h.post(tok, "?wait=materialized", add("", "m", 1), http.StatusOK)
		agg := h.do("GET", "/aggregates/counter/m", tok, nil).json(t)
		if agg["seq"] != float64(i) {
			t.Fatalf("after %d materialized commands the aggregate is at seq %v", i, agg["seq"])
		}
	}
}

// TestAReactorsCommandIDCannotBeTakenFirst: the id of the command a
// reactor will send for an event can be computed in advance. Sent first by
// a client, its dedup record would answer the reactor's command, which
// would never run: the view would silently miss the event. Such ids are
// refused, and the reaction happens.
func TestAReactorsCommandIDCannotBeTakenFirst(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	squat := plait.ReactionID(enginetest.TallyReactor.Name(), plait.EventID("next", 0), 0)
	p := problem(t, h.do("POST", "/commands?wait=outcome", tok, note(squat, "t1", "taken")), http.StatusBadRequest, httpapi.CodeInvalidID)
	if e := p["errors"].([]any)[0].(map[string]any); e["path"] != "id" || !strings.Contains(e["message"].(string), "reserved for the commands reactors send") {
		t.Fatalf("the refusal says %v", e)
	}
	h.post(tok, "?wait=settled", add("next", "t1", 3), http.StatusOK)
	if r := h.do("GET", "/commands/"+squat, tok, nil); r.status != http.StatusOK || r.json(t)["status"] != "accepted" {
		t.Fatalf("the reactor's command: %s", r)
	}
	if tally := h.do("GET", "/aggregates/tally/t1", tok, nil); tally.status != http.StatusOK || tally.json(t)["seq"] != float64(1) {
		t.Fatalf("the tally after the reaction: %s", tally)
	}
}

func TestWaitSettledShowsInViews(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	for i := 1; i <= 5; i++ {
		h.post(tok, "?wait=settled&timeout=10s", add("", "s", 1), http.StatusOK)
		tally := h.do("GET", "/aggregates/tally/s", tok, nil)
		if tally.status != 200 || tally.json(t)["seq"] != float64(i) {
			t.Fatalf("after %d settled commands the tally is %s", i, tally)
		}
	}
	// A rejected command settles at once, with its rejection.
	problem(t, h.do("POST", "/commands?wait=settled", tok, add("", "s", 0)), http.StatusUnprocessableEntity, "invalid")
}

func TestRejectionIs422WithCommandAndAnnotations(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	for _, wait := range []string{"outcome", "materialized", "settled"} {
		id := "r-" + wait
		p := problem(t, h.do("POST", "/commands?wait="+wait, tok, add(id, "a", 0)), http.StatusUnprocessableEntity, "invalid")
		errs := p["errors"].([]any)
		if len(errs) != 1 || errs[0].(map[string]any)["path"] != "by" {
			t.Fatalf("errors %v", errs)
		}
		c, _ := p["command"].(map[string]any)
		if c == nil || c["id"] != id || c["type"] != "counter" || c["aggregateId"] != "a" || c["name"] != "add" || c["user"] != "ann" {
			t.Fatalf("problem command %v", p["command"])
		}
		if d, _ := json.Marshal(c["data"]); string(d) != `{"by":0}` {
			t.Fatalf("command data %s, want the data sent", d)
		}
		if !strings.HasPrefix(p["type"].(string), "https://") {
			t.Fatalf("type %v", p["type"])
		}
	}
	// Nothing changed.
	problem(t, h.do("GET", "/aggregates/counter/a", tok, nil), http.StatusNotFound, "")
}

func TestExpectedSeqConflictIs409(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	h.post(tok, "?wait=outcome", add("c1", "a", 1), http.StatusOK)
	stale := add("c2", "a", 1)
	stale["expectedSeq"] = 0
	p := problem(t, h.do("POST", "/commands?wait=outcome", tok, stale), http.StatusConflict, plait.CodeConflict)
	if p["command"].(map[string]any)["expectedSeq"] != float64(0) || p["errors"].([]any)[0].(map[string]any)["path"] != "expectedSeq" {
		t.Fatalf("problem %v", p)
	}
	fresh := add("c3", "a", 1)
	fresh["expectedSeq"] = 1
	h.post(tok, "?wait=outcome", fresh, http.StatusOK)
	// Without wait, a conflict is acknowledged like anything else and
	// shows as rejected.
	stale["id"] = "c4"
	h.post(tok, "", stale, http.StatusAccepted)
	if got := h.do("GET", "/commands/c4", tok, nil).json(t); got["status"] != "rejected" || got["errors"].([]any)[0].(map[string]any)["code"] != "conflict" {
		t.Fatalf("GET /commands/c4: %v", got)
	}
}

// gatedApp has a counter, a reactor that holds every counter event until
// the test opens the gate (so no counter command settles while it is shut)
// and a "gate" aggregate whose "pass" holds in decide until then (so it is
// pending meanwhile), each gate seen by its owner only.
func gatedApp(gate <-chan struct{}) plait.App {
	gateType := plait.NewAggregate[enginetest.Tally]("gate",
		plait.Handle("pass", func(s enginetest.Tally, c plait.Cmd[enginetest.Empty]) ([]plait.Change, error) {
			<-gate
			return []plait.Change{plait.Emit("passed", enginetest.Empty{})}, nil
		}),
		plait.Apply("passed", func(s enginetest.Tally, e enginetest.Empty) enginetest.Tally { s.Adds++; return s }),
		plait.WithAccess[enginetest.Tally](plait.Access{OwnerOnly: true}),
	)
	reactor := plait.NewReactor("gatekeeper",
		plait.On("counter", "added", func(e plait.Evt[enginetest.Added]) []plait.Dispatch {
			<-gate
			return []plait.Dispatch{plait.Send("tally", e.AggregateID, "note", enginetest.Note{From: e.Source()})}
		}),
	)
	return plait.App{Name: "gated", Aggregates: []plait.Definition{enginetest.CounterType, enginetest.TallyType, gateType}, Reactors: []*plait.Reactor{reactor}}
}

func TestWaitThatRunsOutAnswers202(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	h := start(t, gatedApp(gate), httpapi.Options{}, false)
	t.Cleanup(open) // before the engine stops: cleanups run last first
	tok := token(t, "ann")

	r := h.post(tok, "?wait=settled&timeout=200ms", add("w1", "a", 1), http.StatusAccepted)
	if body := r.json(t); body["id"] != "w1" || body["status"] != "pending" || r.header.Get("Location") != "/commands/w1" {
		t.Fatalf("timed-out wait: %s %v", r, r.header)
	}
	// The smallest timeout, too, and a plain number of seconds.
	h.post(tok, "?wait=settled&timeout=1ns", add("w2", "a", 1), http.StatusAccepted)
	h.post(tok, "?wait=settled&timeout=0.2", add("w2s", "a", 1), http.StatusAccepted)
	// A negative one is a mistake, told as such.
	if r := h.post(tok, "?wait=outcome&timeout=-5s", add("w2n", "a", 1), http.StatusBadRequest); !strings.Contains(string(r.body), "not a negative one") {
		t.Errorf("timeout=-5s: %s", r)
	}
	// The wait counts from the request's arrival: a timeout that ran out
	// while the command was stored is pending, though the embedded store
	// knows its outcome once it is stored.
	for _, wait := range []string{"outcome", "materialized"} {
		for _, timeout := range []string{"0", "1ns"} {
			r := h.post(tok, "?wait="+wait+"&timeout="+timeout, add("", "a", 1), http.StatusAccepted)
			if body := r.json(t); body["status"] != "pending" || r.header.Get("Location") != "/commands/"+body["id"].(string) {
				t.Fatalf("wait=%s&timeout=%s: %s %v", wait, timeout, r, r.header)
			}
		}
	}
	// The command itself was acknowledged and decided.
	if got := h.do("GET", "/commands/w1", tok, nil).json(t); got["status"] != "accepted" {
		t.Fatalf("GET /commands/w1: %v", got)
	}
	// A gate command holds in decide: meanwhile it is pending.
	posted := make(chan reply, 1)
	go func() {
		posted <- h.do("POST", "/commands", tok, cmd{"id": "g1", "type": "gate", "aggregateId": "x", "name": "pass"})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := h.do("GET", "/commands/g1", tok, nil)
		if got.status == 200 {
			if got.json(t)["status"] != "pending" || len(got.json(t)) != 2 {
				t.Fatalf("GET /commands/g1 while held: %s", got)
			}
			// Another user learns nothing of it, not even that it exists.
			problem(t, h.do("GET", "/commands/g1", token(t, "bob"), nil), http.StatusNotFound, "")
			break
		}
		problem(t, got, http.StatusNotFound, "")
		if time.Now().After(deadline) {
			t.Fatal("g1 never showed as pending")
		}
		time.Sleep(5 * time.Millisecond)
	}
	open()
	if r := <-posted; r.status != http.StatusAccepted {
		t.Fatalf("POST g1: %s", r)
	}
	// Once the gate is open, the settled wait completes.
	h.post(tok, "?wait=settled&timeout=10s", add("w3", "a", 1), http.StatusOK)
	h.post(tok, "?wait=settled&timeout=", add("w4", "a", 1), http.StatusOK) // empty: the default
	if got := h.do("GET", "/commands/g1", tok, nil).json(t); got["status"] != "accepted" {
		t.Fatalf("GET /commands/g1: %v", got)
	}
}

func TestBadEnvelopesAre400AndStoreNothing(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	h.post(tok, "?wait=settled", add("c1", "a", 1), http.StatusOK)
	head := h.e.Head()
	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"empty body", ``, 400, httpapi.CodeMalformedJSON},
		{"not JSON", `{"type":`, 400, httpapi.CodeMalformedJSON},
		{"an array", `[{"type":"counter"}]`, 400, httpapi.CodeMalformedJSON},
		{"trailing data", `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1}} {}`, 400, httpapi.CodeMalformedJSON},
		{"unknown envelope field", `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1},"user":"root"}`, 400, httpapi.CodeUnknownField},
		{"field in other case", `{"Type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`, 400, httpapi.CodeUnknownField},
		{"field twice", `{"type":"counter","type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`, 400, httpapi.CodeDuplicateField},
		{"type of wrong kind", `{"type":7,"aggregateId":"a","name":"add","data":{"by":1}}`, 400, httpapi.CodeInvalidType},
		{"fractional expectedSeq", `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1},"expectedSeq":1.5}`, 400, httpapi.CodeInvalidType},
		{"negative expectedSeq", `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1},"expectedSeq":-1}`, 400, httpapi.CodeInvalidData},
		{"unknown type", `{"type":"nope","aggregateId":"a","name":"add","data":{"by":1}}`, 400, httpapi.CodeUnknownType},
		{"missing type", `{"aggregateId":"a","name":"add","data":{"by":1}}`, 400, httpapi.CodeUnknownType},
		{"unknown name", `{"type":"counter","aggregateId":"a","name":"nope","data":{"by":1}}`, 400, httpapi.CodeUnknownCommand},
		{"data of wrong shape", `{"type":"counter","aggregateId":"a","name":"add","data":{"by":"x"}}`, 400, plait.CodeInvalid},
		{"a fraction for an integer", `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1.5}}`, 400, plait.CodeInvalid},
		{"data with unknown field", `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1,"extra":1}}`, 400, "schema:additionalProperties"},
		{"bad aggregate id", `{"type":"counter","aggregateId":"../x","name":"add","data":{"by":1}}`, 400, httpapi.CodeInvalidID},
		{"missing aggregate id", `{"type":"counter","name":"add","data":{"by":1}}`, 400, httpapi.CodeInvalidID},
		{"bad command id", `{"id":"a b","type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`, 400, httpapi.CodeInvalidID},
		{"a reactor's command id", `{"id":"` + plait.ReactionID("x", "y.1", 0) + `","type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`, 400, httpapi.CodeInvalidID},
		{"a view", `{"type":"tally","aggregateId":"a","name":"note","data":{}}`, 403, httpapi.CodeForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, wait := range []string{"", "?wait=outcome"} {
				problem(t, h.do("POST", "/commands"+wait, tok, tc.body), tc.status, tc.code)
			}
		})
	}
	problem(t, h.do("POST", "/commands?wait=forever", tok, add("", "a", 1)), 400, "invalid")
	problem(t, h.do("POST", "/commands?wait=outcome&timeout=%zz", tok, add("", "a", 1)), 400, "invalid")
	for _, bad := range []string{"soon", "-1", "inf", "1e3", "0x10", "1.2.3", "."} {
		problem(t, h.do("POST", "/commands?wait=outcome&timeout="+bad, tok, add("", "a", 1)), 400, "invalid")
	}
	if got := h.e.Head(); got != head {
		t.Fatalf("head moved from %d to %d: bad input was stored", head, got)
	}
}

func TestOversizedBodyIs413(t *testing.T) {
	// The string limit is lifted: this is about the body's size.
	h := start(t, plait.App{}, httpapi.Options{Data: httpapi.DataLimits{MaxString: -1}}, false)
	tok := token(t, "ann")
	big := `{"type":"counter","aggregateId":"a","name":"label","data":{"label":"` + strings.Repeat("x", 1<<20) + `"}}`
	problem(t, h.do("POST", "/commands", tok, big), http.StatusRequestEntityTooLarge, "")
	// Just under the limit is fine (and rejected by nobody).
	fits := `{"type":"counter","aggregateId":"a","name":"label","data":{"label":"` + strings.Repeat("x", 1<<19) + `"}}`
	h.post(tok, "", fits, http.StatusAccepted)

	small := start(t, plait.App{}, httpapi.Options{MaxBody: 64}, false)
	body := `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1},"id":"` + strings.Repeat("z", 64) + `"}`
	problem(t, small.do("POST", "/commands", tok, body), http.StatusRequestEntityTooLarge, "")
	// Without a Content-Length, the limit holds as the body is read.
	req, _ := http.NewRequest("POST", small.ts.URL+"/commands", struct{ *strings.Reader }{strings.NewReader(body)})
	req.Header.Set("Authorization", "Bearer "+tok)
	req.ContentLength = -1
	resp, err := small.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked oversized body: %d", resp.StatusCode)
	}
	if small.e.Head() != 0 {
		t.Fatal("an oversized command was stored")
	}
}

func TestGetCommandStatuses(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	h.post(tok, "", add("ok", "a", 1), http.StatusAccepted)
	h.post(tok, "", add("bad", "a", 0), http.StatusAccepted)

	ok := h.do("GET", "/commands/ok", tok, nil)
	var acc struct {
		ID     string        `json:"id"`
		Status string        `json:"status"`
		Events []plait.Event `json:"events"`
	}
	json.Unmarshal(ok.body, &acc)
	if ok.status != 200 || acc.ID != "ok" || acc.Status != "accepted" || len(acc.Events) != 1 || acc.Events[0].ID != plait.EventID("ok", 0) {
		t.Fatalf("GET /commands/ok: %s", ok)
	}
	bad := h.do("GET", "/commands/bad", tok, nil).json(t)
	errs, _ := bad["errors"].([]any)
	if bad["status"] != "rejected" || len(errs) != 1 || errs[0].(map[string]any)["code"] != "invalid" || bad["events"] != nil {
		t.Fatalf("GET /commands/bad: %v", bad)
	}
	problem(t, h.do("GET", "/commands/never", tok, nil), http.StatusNotFound, "")
	problem(t, h.do("GET", "/commands/not%20an%20id", tok, nil), http.StatusNotFound, "")
	problem(t, h.do("GET", "/commands/ok", "", nil), http.StatusUnauthorized, "")
	// The pending status is shown in TestWaitThatRunsOutAnswers202.
}

func TestEngineStoppedIs503(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	h.post(tok, "", add("c1", "a", 1), http.StatusAccepted)
	// Stop the engine but keep the server.
	stopEngine(t, h)
	problem(t, h.do("POST", "/commands", tok, add("c2", "a", 1)), http.StatusServiceUnavailable, "")
	problem(t, h.do("GET", "/readyz", "", nil), http.StatusServiceUnavailable, "")
	problem(t, h.do("GET", "/stream", tok, nil), http.StatusServiceUnavailable, "")
	if r := h.do("GET", "/healthz", "", nil); r.status != 200 {
		t.Fatalf("healthz: %s", r)
	}
}

// stopEngine stops h's engine and waits until it has.
func stopEngine(t *testing.T, h *harness) {
	t.Helper()
	h.stopEngine()
	select {
	case <-h.e.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("engine did not stop")
	}
}

// TestAWholeNumberWithAFractionIsThatInteger: orderdesk's schema counts a
// quantity of 2.0 as an integer, and the command is placed with 2; a
// quantity the schema takes but an int cannot hold is a 400 naming it in
// the data, as a schema violation is, and nothing is stored.
func TestAWholeNumberWithAFractionIsThatInteger(t *testing.T) {
	h := start(t, orderdesk.App(), httpapi.Options{}, false)
	tok := token(t, "ann")
	place := func(id, qty string) string {
		return `{"type":"order","aggregateId":"` + id + `","name":"place","data":{"customerId":"c1","lines":[{"sku":"A","qty":1,"price":1},{"sku":"B","qty":` + qty + `,"price":10}]}}`
	}
	h.post(tok, "?wait=settled", place("o1", "2.0"), http.StatusOK)
	var got struct {
		State struct {
			Lines []struct{ Qty any }
			Total float64
		}
	}
	if err := json.Unmarshal(h.do("GET", "/aggregates/order/o1", tok, nil).body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.State.Lines) != 2 || got.State.Lines[1].Qty != float64(2) || got.State.Total != 21 {
		t.Fatalf("order %+v, want the second line's qty 2 and total 21", got.State)
	}
	head := h.e.Head()
	for _, qty := range []string{"1e30", "9223372036854775808.0"} {
		p := problem(t, h.do("POST", "/commands?wait=outcome", tok, place("o2", qty)), http.StatusBadRequest, plait.CodeInvalid)
		errs := p["errors"].([]any)
		if e := errs[0].(map[string]any); len(errs) != 1 || e["path"] != "lines[1].qty" || !strings.HasPrefix(e["message"].(string), "want a whole number") {
			t.Errorf("qty %s: errors %v", qty, errs)
		}
	}
	if h.e.Head() != head {
		t.Fatal("a refused command was stored")
	}
}

// TestEndWaitsAnswersHeldWaits: at a shutdown, a wait still held when its
// end comes answers 202 pending, as when its timeout runs out, rather than
// being cut off without an answer when the drain ends.
func TestEndWaitsAnswersHeldWaits(t *testing.T) {
	gate := make(chan struct{})
	h := start(t, gatedApp(gate), httpapi.Options{}, false)
	t.Cleanup(func() { close(gate) })
	tok := token(t, "ann")
	held := make(chan reply, 1)
	go func() { held <- h.do("POST", "/commands?wait=settled&timeout=60s", tok, add("held", "a", 1)) }()
	// The command is decided (its reactor is held at the gate), so the
	// request waits for its settlement.
	deadline := time.Now().Add(5 * time.Second)
	for h.do("GET", "/commands/held", tok, nil).status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the held command was never acknowledged")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	h.srv.EndWaits(time.Now().Add(100 * time.Millisecond))
	select {
	case r := <-held:
		if r.status != http.StatusAccepted || r.json(t)["status"] != "pending" {
			t.Fatalf("a wait ended by EndWaits: %s, want 202 pending", r)
		}
		if took := time.Since(start); took < 100*time.Millisecond {
			t.Fatalf("answered after %v, before the end it was given", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held wait was not ended")
	}
	// A wait that starts after the end answers at once.
	r := h.post(tok, "?wait=settled&timeout=60s", add("later", "a", 1), http.StatusAccepted)
	if r.json(t)["status"] != "pending" {
		t.Fatalf("a wait after EndWaits: %s", r)
	}
}

// TestATrickledBodyIsCutButAWaitIsNot: reading a command's body is bounded,
// so a client that sends it byte by byte, or stops, holds the connection
// no longer; a wait after the body is read may last well past that bound.
func TestATrickledBodyIsCutButAWaitIsNot(t *testing.T) {
	gate := make(chan struct{})
	h := start(t, gatedApp(gate), httpapi.Options{BodyTimeout: 300 * time.Millisecond}, false)
	tok := token(t, "ann")

	conn, err := net.Dial("tcp", strings.TrimPrefix(h.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /commands HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ty", tok)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a body that stopped coming: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("a body that stopped coming: %s, want 408", resp.Status)
	}

	// The reactor of this add holds at the gate until after the body
	// timeout: the settled wait goes on, and is answered once it opens.
	time.AfterFunc(800*time.Millisecond, func() { close(gate) })
	start := time.Now()
	h.post(tok, "?wait=settled&timeout=10s", add("held", "a", 1), http.StatusOK)
	if took := time.Since(start); took < 700*time.Millisecond {
		t.Fatalf("the wait ended after %v, before the gate opened", took)
	}
}
