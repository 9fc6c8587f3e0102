package httpapi_test

import (
	"encoding/json"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/httpapi"
)

const writeSchema = `{"type":"object","required":["title"],"properties":{"title":{"type":"string","minLength":1,"maxLength":20},"body":{"type":"string"}}}`

func schemaApp() plait.App {
	app := testApp()
	app.Name = "schemas"
	memo := plait.NewAggregate[Note]("memo",
		plait.Handle("write", func(s Note, c plait.Cmd[Write]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("written", c.Data)}, nil
		}),
		plait.Handle("erase", func(s Note, c plait.Cmd[struct{}]) ([]plait.Change, error) { return nil, nil }),
		plait.Apply("written", func(s Note, e Write) Note { s.Title, s.Body = e.Title, e.Body; return s }),
		plait.Schema[Note]("write", writeSchema),
	)
	app.Aggregates = append(app.Aggregates, memo)
	return app
}

func TestSchemasAreServed(t *testing.T) {
	h := start(t, schemaApp(), httpapi.Options{}, true)
	r := h.do("GET", "/schemas/memo", "", nil)
	if r.status != 200 {
		t.Fatalf("GET /schemas/memo: %s", r)
	}
	var all struct {
		Type     string                     `json:"type"`
		Commands map[string]json.RawMessage `json:"commands"`
	}
	if err := json.Unmarshal(r.body, &all); err != nil || all.Type != "memo" || len(all.Commands) != 1 || string(all.Commands["write"]) != writeSchema {
		t.Fatalf("GET /schemas/memo: %s (%v)", r, err)
	}
	r = h.do("GET", "/schemas/memo/write", "", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/schema+json" || string(r.body) != writeSchema+"\n" {
		t.Fatalf("GET /schemas/memo/write: %s %v", r, r.header)
	}
	for _, path := range []string{"/schemas/nope", "/schemas/memo/nope", "/schemas/memo/erase"} {
		problem(t, h.do("GET", path, "", nil), 404, "")
	}
	// counter declares no schema: an empty set.
	if r := h.do("GET", "/schemas/counter", "", nil); r.status != 200 || len(r.json(t)["commands"].(map[string]any)) != 0 {
		t.Fatalf("GET /schemas/counter: %s", r)
	}
	// They take no parameter: one given is refused, not ignored.
	for _, path := range []string{"/schemas/memo?version=2", "/schemas/memo/write?x=1"} {
		problem(t, h.do("GET", path, "", nil), 400, httpapi.CodeUnknownParameter)
	}
}

func TestDataThatViolatesItsSchemaIsA400WithEveryViolation(t *testing.T) {
	h := start(t, schemaApp(), httpapi.Options{}, true)
	c := cmd{"id": "m1", "type": "memo", "aggregateId": "a", "name": "write", "data": map[string]any{"title": "", "body": 3}}
	p := problem(t, h.post("", "?wait=outcome", c, 400), 400, "schema:minLength")
	errs := p["errors"].([]any)
	if len(errs) != 2 {
		t.Fatalf("errors %v, want two", errs)
	}
	want := map[string]string{"title": "schema:minLength", "body": "schema:type"}
	for _, e := range errs {
		m := e.(map[string]any)
		if want[m["path"].(string)] != m["code"] {
			t.Errorf("error %v, want one of %v", m, want)
		}
	}
	// Nothing was stored: the id is free.
	if r := h.do("GET", "/commands/m1", "", nil); r.status != 404 {
		t.Errorf("GET /commands/m1 after a schema violation: %s", r)
	}
	c["data"] = map[string]any{"title": "ok"}
	h.post("", "?wait=outcome", c, 200)
}

// "data": null is no data, as an absent data is: both are checked against
// the schema as {}, so a schema that requires a field refuses both alike,
// and a command without fields takes both.
func TestNullDataIsAbsentData(t *testing.T) {
	h := start(t, schemaApp(), httpapi.Options{}, true)
	for i, data := range []any{nil, json.RawMessage("null")} {
		c := cmd{"type": "memo", "aggregateId": "a", "name": "write"}
		if data != nil {
			c["data"] = data
		}
		p := problem(t, h.post("", "?wait=outcome", c, 400), 400, "schema:required")
		if errs := p["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["path"] != "title" {
			t.Fatalf("case %d: errors %v, want title required", i, errs)
		}
		c = cmd{"id": "e" + string(rune('0'+i)), "type": "memo", "aggregateId": "a", "name": "erase"}
		if data != nil {
			c["data"] = data
		}
		h.post("", "?wait=outcome", c, 200)
		if got := h.do("GET", "/commands/"+c["id"].(string), "", nil).json(t); got["status"] != "accepted" {
			t.Fatalf("case %d: erase: %v", i, got)
		}
	}
}
