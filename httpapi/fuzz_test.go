package httpapi

import (
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/plaithq/plait"
)

var envelopeCodes = []string{CodeMalformedJSON, CodeUnknownField, CodeDuplicateField, CodeInvalidType, CodeInvalidData, CodeTooLarge, CodeTooDeep}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`,
		`{"id":"c1","type":"counter","aggregateId":"a","name":"add","data":{"by":1},"expectedSeq":3}`,
		`{"id":null,"type":"t","aggregateId":"a","name":"n","data":null,"expectedSeq":null}`,
		`{"type":"counter"} {}`,
		`{"type":"counter","type":"x"}`,
		`{"Type":"counter"}`,
		`{"expectedSeq":1.5}`,
		`{"expectedSeq":-1}`,
		`{"expectedSeq":1e3}`,
		`{"data":[1,2,{"a":"\u0000"}]}`,
		`[]`, `null`, `""`, ``, `{`, `{"a":}`, "{\"type\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		cmd, p := decodeEnvelope(body, DataLimits{})
		if p != nil {
			if (p.Status != 400 && p.Status != 413) || len(p.Errors) != 1 || !slices.Contains(envelopeCodes, p.Errors[0].Code) {
				t.Fatalf("problem %+v", p)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		if cmd.CorrelationID != "" || cmd.User != "" || !cmd.At.IsZero() || cmd.CausationID != "" {
			t.Fatalf("the envelope set what only the engine sets: %+v", cmd)
		}
		// What was accepted decodes the same once encoded again.
		env := map[string]any{"id": cmd.ID, "type": cmd.Type, "aggregateId": cmd.AggregateID, "name": cmd.Name}
		if cmd.Data != nil {
			env["data"] = cmd.Data
		}
		if cmd.ExpectedSeq != nil {
			env["expectedSeq"] = *cmd.ExpectedSeq
		}
		again, err := json.Marshal(env)
		if err != nil {
			t.Fatalf("encode %+v: %v", cmd, err)
		}
		cmd2, p := decodeEnvelope(again, DataLimits{})
		if p != nil {
			t.Fatalf("re-encoded %s: %+v", again, p)
		}
		if cmd2.ID != cmd.ID || cmd2.Type != cmd.Type || cmd2.AggregateID != cmd.AggregateID || cmd2.Name != cmd.Name ||
			(cmd.ExpectedSeq == nil) != (cmd2.ExpectedSeq == nil) || (cmd.ExpectedSeq != nil && *cmd.ExpectedSeq != *cmd2.ExpectedSeq) {
			t.Fatalf("round trip: %+v != %+v", cmd2, cmd)
		}
		// json.Marshal may escape characters differently (& as \u0026):
		// compare the values, not the bytes.
		var v1, v2 any
		json.Unmarshal(cmd.Data, &v1)
		json.Unmarshal(cmd2.Data, &v2)
		if !reflect.DeepEqual(v1, v2) {
			t.Fatalf("data round trip: %s != %s", cmd2.Data, cmd.Data)
		}
	})
}

var listFields = []string{"a_b", "count", "label", "secret", "title", "with-dash"}

// listSealed are the fields of listFields that are personal data.
var listSealed = []string{"secret"}

func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{
		"", "eq.count=3", "prefix.label=ab&sort=-count&fields=label,count&limit=10&after=xyz",
		"eq.count=1&eq.count=2", "sort=id", "sort=-id", "sort=-", "fields=", "fields=label,,count",
		"gt.count=1", "eq.=1", "eq.with-dash=1", "eq.nope=1", "limit=0", "limit=1001", "limit=-1",
		"after=", "sort=a&sort=b", "foo=bar", "eq.count.x=1", "prefix.title=%00", "eq.label=%FF",
		"eq.secret=x", "prefix.secret=x", "sort=-secret", "fields=secret,label", "eq.id=a", "prefix.id=a&eq.id=b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw)
		lq, err := parseListQuery(q, plait.Settings{Fields: listFields}, listSealed)
		if err != nil {
			var pe *paramError
			if !errors.As(err, &pe) || pe.Param == "" && !q.Has("") || pe.Code == "" || pe.Message == "" {
				t.Fatalf("error %#v", err)
			}
			if _, ok := q[pe.Param]; !ok {
				t.Fatalf("error names %q, not a parameter given", pe.Param)
			}
			return
		}
		ok := func(f string) bool { return f != "with-dash" && slices.Contains(listFields, f) }
		for _, fl := range lq.Filters {
			if fl.OnID {
				if fl.Field != "" || (fl.Op != "eq" && fl.Op != "prefix") || ok("id") || !slices.Contains(q[fl.Op+".id"], fl.Value) {
					t.Fatalf("id filter %+v from %q", fl, raw)
				}
				continue
			}
			if !ok(fl.Field) || (fl.Op != "eq" && fl.Op != "prefix") || !slices.Contains(q[fl.Op+"."+fl.Field], fl.Value) {
				t.Fatalf("filter %+v from %q", fl, raw)
			}
		}
		if lq.Sort != "" && (!ok(lq.Sort) || slices.Contains(listSealed, lq.Sort)) {
			t.Fatalf("sort %q from %q", lq.Sort, raw)
		}
		for _, f := range lq.Fields {
			if !ok(f) {
				t.Fatalf("field %q from %q", f, raw)
			}
		}
		if lq.Limit < 1 || lq.Limit > maxListLimit || lq.Owner != "" {
			t.Fatalf("query %+v from %q", lq, raw)
		}
		for k := range q {
			if k != "sort" && k != "fields" && k != "limit" && k != "after" && !strings.HasPrefix(k, "eq.") && !strings.HasPrefix(k, "prefix.") {
				t.Fatalf("parameter %q let through", k)
			}
		}
	})
}

func TestRejectionProblem(t *testing.T) {
	out := &plait.Outcome{
		Command: plait.Command{ID: "c1", Type: "counter", Name: "add"},
		Status:  plait.StatusRejected,
		Errors:  []plait.FieldError{{Path: "by", Code: "invalid", Message: "too small"}, {Code: "other", Message: "and more"}},
	}
	p := rejectionProblem(out)
	if p.Status != 422 || p.Type != ProblemBase+"rejected" || p.Detail != "by: too small; and more" || p.Command.ID != "c1" || p.ID != "c1" {
		t.Fatalf("problem %+v", p)
	}
	out.Errors = append(out.Errors, plait.FieldError{Path: "expectedSeq", Code: plait.CodeConflict, Message: "moved on"})
	if p := rejectionProblem(out); p.Status != 409 || p.Type != ProblemBase+"conflict" {
		t.Fatalf("conflict problem %+v", p)
	}
}

func TestEtagMatch(t *testing.T) {
	for h, want := range map[string]bool{`"3"`: true, `W/"3"`: true, `"1", "3"`: true, `*`: true, `"4"`: false, ``: false, `3`: false} {
		if got := etagMatch(h, `"3"`); got != want {
			t.Errorf("etagMatch(%q) = %v", h, got)
		}
	}
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	body := []byte(`{"id":"01J0000000000000000000000","type":"order","aggregateId":"o-123","name":"place","data":{"customerId":"c-1","lines":[{"sku":"A","qty":2,"price":3.5},{"sku":"B","qty":1,"price":10}]}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, p := decodeEnvelope(body, DataLimits{}); p != nil {
			b.Fatal(p)
		}
	}
}
