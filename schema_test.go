package plait_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/plaithq/plait"
)

type line struct {
	SKU string  `json:"sku"`
	Qty int     `json:"qty"`
	Tag *string `json:"tag,omitempty"`
}

type place struct {
	Lines []line `json:"lines"`
}

const placeSchema = `{
	"type": "object",
	"required": ["lines"],
	"additionalProperties": false,
	"properties": {
		"lines": {"type": "array", "minItems": 1, "items": {
			"type": "object",
			"required": ["sku", "qty"],
			"properties": {
				"sku": {"type": "string", "minLength": 1},
				"qty": {"type": "integer", "minimum": 1}
			}
		}}
	}
}`

func shop(opts ...plait.Option[struct{}]) *plait.Aggregate[struct{}] {
	base := []plait.Option[struct{}]{
		plait.Handle("place", func(s struct{}, c plait.Cmd[place]) ([]plait.Change, error) { return nil, nil }),
	}
	return plait.NewAggregate("shop", append(base, opts...)...)
}

func TestSchemaViolationsAreAnnotationsOfTheData(t *testing.T) {
	a := shop(plait.Schema[struct{}]("place", placeSchema))
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		data string
		want []plait.FieldError // path and code only
	}{
		{`{"lines":[{"sku":"a","qty":1}]}`, nil},
		{`{"lines":[{"sku":"a","qty":0},{"sku":"","qty":2}]}`, []plait.FieldError{
			{Path: "lines[0].qty", Code: "schema:minimum"}, {Path: "lines[1].sku", Code: "schema:minLength"},
		}},
		{`{}`, []plait.FieldError{{Path: "lines", Code: "schema:required"}}},
		{``, []plait.FieldError{{Path: "lines", Code: "schema:required"}}},
		{`{"lines":[{"qty":"2"}]}`, []plait.FieldError{
			{Path: "lines[0].qty", Code: "schema:type"}, {Path: "lines[0].sku", Code: "schema:required"},
		}},
		{`{"lines":[], "x":1}`, []plait.FieldError{{Path: "lines", Code: "schema:minItems"}, {Path: "x", Code: "schema:additionalProperties"}}},
		{`[]`, []plait.FieldError{{Path: "", Code: "schema:type"}}},
		// The empty key is [""]: neither the data itself nor a path ending in a dot.
		{`{"lines":[{"sku":"a","qty":1}], "":1}`, []plait.FieldError{{Path: `[""]`, Code: "schema:additionalProperties"}}},
	} {
		err := a.CheckCommand("place", json.RawMessage(c.data))
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.data, err)
			}
			continue
		}
		var se *plait.SchemaError
		if !errors.As(err, &se) || !errors.Is(err, plait.ErrBadPayload) {
			t.Errorf("%s: %v, want a schema error that is ErrBadPayload", c.data, err)
			continue
		}
		var env *plait.EnvelopeError
		if !errors.As(err, &env) || env.Field != "data" {
			t.Errorf("%s: %v, want an envelope error on data", c.data, err)
		}
		var got []plait.FieldError
		for _, fe := range se.Errors {
			if fe.Message == "" {
				t.Errorf("%s: %+v has no message", c.data, fe)
			}
			got = append(got, plait.FieldError{Path: fe.Path, Code: fe.Code})
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.data, got, c.want)
		}
	}
	// A command without a schema is checked by decoding alone.
	if err := shop().CheckCommand("place", json.RawMessage(`{"lines":[]}`)); err != nil {
		t.Errorf("no schema: %v", err)
	}
}

func TestSchemaIsServedAsDeclared(t *testing.T) {
	a := shop(plait.Schema[struct{}]("place", placeSchema))
	got, ok := a.CommandSchema("place")
	if !ok {
		t.Fatal("no schema for place")
	}
	var v map[string]any
	if err := json.Unmarshal(got, &v); err != nil || v["type"] != "object" {
		t.Fatalf("schema %s: %v", got, err)
	}
	if _, ok := a.CommandSchema("ship"); ok {
		t.Error("a schema for a command that declares none")
	}
}

func TestBadSchemasAreMistakesOfTheDefinition(t *testing.T) {
	for _, c := range []struct {
		schema, command, want string
	}{
		{`{"type": "object"`, "place", "decode"},
		{`{"type": 12}`, "place", "place"},
		{`{"$ref": "https://example.com/s.json"}`, "place", "may not refer outside itself"},
		{`{"type": "object"}`, "ship", `"ship", which no Handle declares`},
	} {
		a := shop(plait.Schema[struct{}](c.command, c.schema))
		err := a.Err()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.schema, err, c.want)
		}
		app := plait.App{Name: "shops", Aggregates: []plait.Definition{a}}
		if app.Validate() == nil {
			t.Errorf("%s: the app validates", c.schema)
		}
	}
}

// TestWholeNumbersDecodeAsTheSchemaCountsThem: JSON Schema counts 2.0 and
// 2e0 as integers, so an integer field takes them as 2, with a schema or
// without; a value the field cannot hold — a fraction, a string, a number
// beyond its range — is a *SchemaError at its path in the data, never a
// message of the Go decoder.
func TestWholeNumbersDecodeAsTheSchemaCountsThem(t *testing.T) {
	var got []int
	handle := plait.Handle("place", func(s struct{}, c plait.Cmd[place]) ([]plait.Change, error) {
		for _, l := range c.Data.Lines {
			got = append(got, l.Qty)
		}
		return nil, nil
	})
	withSchema := plait.NewAggregate("shop", handle, plait.Schema[struct{}]("place", placeSchema))
	without := plait.NewAggregate("shop", handle)
	for _, a := range []*plait.Aggregate[struct{}]{withSchema, without} {
		data := `{"lines":[{"sku":"a","qty":2.0},{"sku":"b","qty":3e0,"tag":"4.0"},{"sku":"c","qty":50e-1},{"sku":"d","qty":1}]}`
		if err := a.CheckCommand("place", json.RawMessage(data)); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		got = nil
		if _, err := a.Decide(plait.Current{}, plait.Command{Name: "place", Data: json.RawMessage(data)}); err != nil {
			t.Fatalf("decide %s: %v", data, err)
		}
		if !reflect.DeepEqual(got, []int{2, 3, 5, 1}) {
			t.Fatalf("decide saw quantities %v, want [2 3 5 1]", got)
		}
	}
	for _, c := range []struct {
		a          *plait.Aggregate[struct{}]
		data, code string
	}{
		{withSchema, `{"lines":[{"sku":"a","qty":1},{"sku":"b","qty":2.5}]}`, "schema:type"},
		{without, `{"lines":[{"sku":"a","qty":1},{"sku":"b","qty":2.5}]}`, plait.CodeInvalid},
		{withSchema, `{"lines":[{"sku":"a","qty":1},{"sku":"b","qty":1e30}]}`, plait.CodeInvalid},
		{without, `{"lines":[{"sku":"a","qty":1},{"sku":"b","qty":9223372036854775808.0}]}`, plait.CodeInvalid},
		{without, `{"lines":[{"sku":"a","qty":2.0},{"sku":"b","qty":"2"}]}`, plait.CodeInvalid},
	} {
		check := c.a.CheckCommand("place", json.RawMessage(c.data))
		_, decide := c.a.Decide(plait.Current{}, plait.Command{Name: "place", Data: json.RawMessage(c.data)})
		for i, err := range []error{check, decide} {
			var se *plait.SchemaError
			var env *plait.EnvelopeError
			if !errors.As(err, &se) || !errors.Is(err, plait.ErrBadPayload) || !errors.As(err, &env) || env.Field != "data" {
				t.Errorf("%s: %v, want a schema error on data", c.data, err)
				continue
			}
			if len(se.Errors) != 1 {
				t.Errorf("%s: %+v, want one annotation", c.data, se.Errors)
				continue
			}
			fe := se.Errors[0]
			if fe.Path != "lines[1].qty" || fe.Message == "" || i == 0 && fe.Code != c.code ||
				fe.Code == plait.CodeInvalid && !strings.HasPrefix(fe.Message, "want a whole number") {
				t.Errorf("%s: %+v, want lines[1].qty %s", c.data, se.Errors, c.code)
			}
		}
	}
}

// TestTypeViolationsSayWhatWasWanted: a value of the wrong type is told in
// words, null (a value left out) aside.
func TestTypeViolationsSayWhatWasWanted(t *testing.T) {
	type line struct {
		SKU   string   `json:"sku"`
		Qty   *int     `json:"qty"`
		Price *float64 `json:"price"`
	}
	type order struct {
		Lines []line `json:"lines"`
		Note  string `json:"note,omitempty"`
	}
	a := plait.NewAggregate[order]("order",
		plait.Handle("place", func(s order, c plait.Cmd[order]) ([]plait.Change, error) { return nil, nil }),
		plait.Schema[order]("place", `{"type": "object", "properties": {
			"lines": {"type": ["array", "null"], "items": {"type": "object", "properties": {
				"sku": {"type": ["string", "null"]}, "qty": {"type": ["integer", "null"]}, "price": {"type": ["number", "null"]}}}},
			"note": {"type": "string"}}}`),
	)
	for data, want := range map[string]string{
		`{"lines":[{"sku":"a","qty":1.5}]}`:   "want a whole number, not a number with a fraction",
		`{"lines":[{"sku":"a","qty":"2"}]}`:   "want a whole number, not text",
		`{"lines":[{"sku":"a","price":"1"}]}`: "want a number, not text",
		`{"lines":[{"sku":5}]}`:               "want text, not a number",
		`{"lines":{}}`:                        "want a list, not an object",
		`{"note":true}`:                       "want text, not true or false",
	} {
		err := a.CheckCommand("place", json.RawMessage(data))
		var se *plait.SchemaError
		if !errors.As(err, &se) || len(se.Errors) != 1 || se.Errors[0].Code != "schema:type" || se.Errors[0].Message != want {
			t.Errorf("%s: %v, want one schema:type annotation %q", data, err, want)
		}
	}
	// Without a schema, the decoding says it alike.
	plain := plait.NewAggregate[order]("order",
		plait.Handle("place", func(s order, c plait.Cmd[order]) ([]plait.Change, error) { return nil, nil }),
	)
	for data, want := range map[string]string{
		`{"lines":[{"sku":5}]}`:   "want text",
		`{"lines":{}}`:            "want a list",
		`{"lines":[{"qty":"2"}]}`: "want a whole number, at most 9223372036854775807 either side of 0",
	} {
		err := plain.CheckCommand("place", json.RawMessage(data))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s without a schema: %v, want %q", data, err, want)
		}
	}
}

// TestAnUnknownFieldIsAnnotatedWhereItIs: data with a member its Go type
// has no field for is refused, annotated at that member's path as a JSON
// Schema that allows no other member would annotate it, so that a form can
// show it by the field sent, whether or not the command has a schema; a
// member named in another case, of an embedded struct, of a map or inside
// a value that decodes itself is no unknown field.
func TestAnUnknownFieldIsAnnotatedWhereItIs(t *testing.T) {
	type base struct {
		Note string `json:"note"`
	}
	type order struct {
		base
		Lines []line               `json:"lines"`
		Tags  map[string]line      `json:"tags"`
		Extra json.RawMessage      `json:"extra"`
		Ref   *struct{ ID string } `json:"ref"`
		Any   map[string]any       `json:"any"`
		Pair  [1]line              `json:"pair"`
	}
	shop := plait.NewAggregate("shop", plait.Handle("place", func(s struct{}, c plait.Cmd[order]) ([]plait.Change, error) { return nil, nil }))
	for data, path := range map[string]string{
		`{"lines":[{"sku":"a","qty":1}],"titel":"x"}`:          "titel",
		`{"lines":[{"sku":"a","qty":1},{"sku":"b","qtty":2}]}`: "lines[1].qtty",
		`{"tags":{"t":{"sku":"a","size":1}}}`:                  "tags.t.size",
		`{"ref":{"ID":"r","id2":"s"}}`:                         "ref.id2",
		`{"note":"n","lines":[],"a.b":1}`:                      `["a.b"]`,
		// What a fixed array has no room for is skipped, not checked.
		`{"pair":[{"sku":"a"},{"zz":1}],"zz":2}`:                                                          "zz",
		`{"lines":[{"SKU":"a","Qty":1}],"Note":"n","extra":{"x":1},"any":{"y":{"z":1}},"ref":{"id":"r"}}`: "",
	} {
		err := shop.CheckCommand("place", json.RawMessage(data))
		if path == "" {
			if err != nil {
				t.Errorf("%s: %v", data, err)
			}
			continue
		}
		var se *plait.SchemaError
		if !errors.As(err, &se) || !errors.Is(err, plait.ErrBadPayload) || len(se.Errors) != 1 {
			t.Errorf("%s: %v, want one annotation", data, err)
			continue
		}
		if fe := se.Errors[0]; fe.Path != path || fe.Code != "schema:additionalProperties" || fe.Message == "" {
			t.Errorf("%s: %+v, want %s schema:additionalProperties", data, fe, path)
		}
	}
}
