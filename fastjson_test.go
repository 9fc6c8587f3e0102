package plait

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzFastDecodingAgreesWithEncodingJSON feeds the same bytes to the fast
// decoder and to encoding/json, as a command's data (strict) and as an
// event (plain): both accept or both refuse, and what they accept decodes
// to the same value.
func FuzzFastDecodingAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"title":"a","qty":2}`, `{"title":"a","qty":2,"extra":1}`, `{"qty":"2"}`, `{"qty":1.5}`, `{} {}`, `{}]`, `{}}`,
		`{} x`, ` {} `, "{}\u00a0", `null`, `[]`, `"s"`, `{"sub":{"x":1e400}}`, `{"tags":["a",1]}`, `{"Title":"case"}`,
		`{"title":"\ud800"}`, `{"title":"a","title":"b"}`, `{"sub":null}`, `{"qty":-0}`, `{"qty":9223372036854775808}`,
		`{"id":"e","seq":3,"data":{"a":[1,2]},"at":"2026-11-23T12:00:00.5+01:00","lineage":{"f":{"type":"t","aggregateId":"a","seq":1}}}`,
		`{"at":"2026-13-01T00:00:00Z"}`, `{"data":nul}`, `{"version":"2"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var fast, std fuzzData
		errFast, errStd := fastStrict(raw, &fast), stdStrict(raw, &std)
		if (errFast == nil) != (errStd == nil) {
			t.Fatalf("strict %q: fast %v, encoding/json %v", raw, errFast, errStd)
		}
		if errStd == nil && !reflect.DeepEqual(fast, std) {
			t.Fatalf("strict %q: fast %+v, encoding/json %+v", raw, fast, std)
		}
		var evFast, evStd Event
		errFast, errStd = decodeJSON(raw, &evFast), json.Unmarshal(raw, &evStd)
		if (errFast == nil) != (errStd == nil) {
			t.Fatalf("event %q: fast %v, encoding/json %v", raw, errFast, errStd)
		}
		if errStd == nil && !reflect.DeepEqual(evFast, evStd) {
			t.Fatalf("event %q: fast %+v, encoding/json %+v", raw, evFast, evStd)
		}
	})
}
