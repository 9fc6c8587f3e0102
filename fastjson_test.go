package plait

import (
	"encoding/json"
	"errors"
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
		`{"at":"2026-13-01T00:00:00Z"}`, `{"data":nul}`, `{"version":"2"}`, `{"qty":21000000000000000000}`,
		`{"qtY":18446744073709551617}`, `{"seq":18446744073709551617}`, `{"qty":-18446744073709551617}`,
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

// TestAWholeNumberPast64BitsIsRefused: a number past 2^64 into an integer
// field is refused at its path, as a command's data and as an event's,
// never taken as the number modulo 2^64 (as the fast decoder would).
func TestAWholeNumberPast64BitsIsRefused(t *testing.T) {
	for _, raw := range []string{`{"qty":21000000000000000000}`, `{"qty":18446744073709551617}`, `{"title":"a","qty":-36893488147419103233}`} {
		var d fuzzData
		err := decodeStrictInto([]byte(raw), &d)
		var se *SchemaError
		if !errors.As(err, &se) || len(se.Errors) != 1 || se.Errors[0].Path != "qty" || se.Errors[0].Code != CodeInvalid {
			t.Errorf("command data %s: %v (qty %d), want qty refused as invalid", raw, err, d.Qty)
		}
		if err := decodeJSON([]byte(raw), &d); err == nil {
			t.Errorf("event data %s: decoded, qty %d", raw, d.Qty)
		}
	}
}
