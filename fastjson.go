package plait

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"

	fastjson "github.com/segmentio/encoding/json"
)

// Decoding is most of the work in the hot paths (every command's data,
// every event folded or reacted to, every state loaded), so this package
// decodes with github.com/segmentio/encoding/json: the same results and
// the same errors as encoding/json, several times faster. It encodes with
// encoding/json, whose output (omitzero included) is the stored format.

// decodeJSON decodes one JSON value into v, as json.Unmarshal does.
func decodeJSON(raw []byte, v any) error {
	if longDigitRun(raw) {
		return json.Unmarshal(raw, v)
	}
	return fastjson.Unmarshal(raw, v)
}

// longDigitRun reports whether raw holds 20 digits in a row or more: a
// number the fast decoder may misread (it reads a whole number past 2^64
// into an integer field as the number modulo 2^64, with no error), which
// is decoded by encoding/json instead. A string of such digits is too,
// merely more slowly.
func longDigitRun(raw []byte) bool {
	run := 0
	for _, c := range raw {
		if c >= '0' && c <= '9' {
			if run++; run >= 20 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// errTrailing refuses data after the payload's JSON value.
var errTrailing = errors.New("trailing data after the payload")

// decodeStrictInto decodes one JSON value into v, refusing unknown fields
// and anything but white space after the value. Data refused is decoded
// again by encoding/json, whose error messages users read in rejections.
//
// A whole number written with a fraction or an exponent (2.0, 2e0), which
// JSON Schema counts as an integer, decodes into an integer field as that
// integer. A value the field cannot hold at all (a fraction, a string, a
// number beyond the field's range) is a *SchemaError naming its path in
// the data, code [CodeInvalid].
func decodeStrictInto(raw []byte, v any) error {
	err := fastStrict(raw, v)
	if err == nil {
		return nil
	}
	stdErr := stdStrict(raw, v)
	if stdErr == nil {
		return err
	}
	var ute *json.UnmarshalTypeError
	if !errors.As(stdErr, &ute) {
		if fe, ok := unknownField(raw, reflect.TypeOf(v), stdErr); ok {
			return &SchemaError{Errors: []FieldError{fe}}
		}
		return stdErr
	}
	if isInteger(ute.Type) && strings.HasPrefix(ute.Value, "number ") {
		if whole, n := wholeNumbers(raw); n > 0 {
			resetValue(v)
			if err = fastStrict(whole, v); err == nil {
				return nil
			}
			resetValue(v)
			if stdErr = stdStrict(whole, v); stdErr == nil {
				return err
			}
			if !errors.As(stdErr, &ute) {
				return stdErr
			}
			raw = whole
		}
	}
	return &SchemaError{Errors: []FieldError{{Path: valuePath(raw, ute), Code: CodeInvalid, Message: want(ute.Type)}}}
}

// codeNotAllowed is the code of a member of the data that is not allowed.
const codeNotAllowed = "schema:additionalProperties"

// unknownField annotates the member of raw that err, encoding/json's
// refusal of an unknown field, is about: its path in the data, so that a
// client can show the annotation at the field it sent (encoding/json names
// the key alone). ok is false when err is no such refusal or the member
// cannot be told.
func unknownField(raw []byte, t reflect.Type, err error) (fe FieldError, ok bool) {
	key, found := strings.CutPrefix(err.Error(), "json: unknown field ")
	if !found {
		return fe, false
	}
	if key, err = strconv.Unquote(key); err != nil {
		return fe, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	path, ok := firstUnknown(dec, t, "")
	if !ok || (path != key && !strings.HasSuffix(path, "."+key) && !strings.HasSuffix(path, "["+quoteKey(key)+"]")) {
		return fe, false
	}
	// Annotated as a JSON Schema with "additionalProperties": false
	// annotates it, which is what the Go type says: the same to a client
	// whether or not the command has a schema.
	return FieldError{Path: path, Code: codeNotAllowed, Message: "this field is not allowed here"}, true
}

// firstUnknown reads the next value from dec, which t decodes (nil: any
// value, unchecked), and returns the path of its first object member that
// has no field in the struct t makes of that object, as encoding/json
// matches them (its name, else its name in another case).
func firstUnknown(dec *json.Decoder, t reflect.Type, path string) (string, bool) {
	tok, err := dec.Token()
	if err != nil {
		return "", false
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && decodesItself(t) {
		t = nil
	}
	switch tok {
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if t != nil && t.Kind() == reflect.Array && i == t.Len() {
				elem = nil // encoding/json skips what an array has no room for
			}
			if p, ok := firstUnknown(dec, elem, fmt.Sprintf("%s[%d]", path, i)); ok {
				return p, true
			}
		}
	case json.Delim('{'):
		for dec.More() {
			tok, err := dec.Token()
			key, isKey := tok.(string)
			if err != nil || !isKey {
				return "", false
			}
			var member reflect.Type
			switch {
			case t == nil:
			case t.Kind() == reflect.Map:
				member = t.Elem()
			case t.Kind() == reflect.Struct:
				f, ok := structMember(t, key)
				if !ok {
					return JoinPath(path, key), true
				}
				member = f
			}
			if p, ok := firstUnknown(dec, member, JoinPath(path, key)); ok {
				return p, true
			}
		}
	default:
		return "", false // a scalar
	}
	dec.Token() // the closing delimiter
	return "", false
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// decodesItself reports whether encoding/json decodes into t by its own
// UnmarshalJSON, not field by field.
func decodesItself(t reflect.Type) bool {
	return t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType)
}

// structMember returns the type of the field of struct t that decodes
// the object member key, as encoding/json finds it: by its JSON name, else
// by that name in another case, embedded structs' fields included.
func structMember(t reflect.Type, key string) (reflect.Type, bool) {
	var folded reflect.Type
	for name, f := range jsonMembers(t) {
		if name == key {
			return f.Type, true
		}
		if folded == nil && strings.EqualFold(name, key) {
			folded = f.Type
		}
	}
	return folded, folded != nil
}

// isInteger reports whether t is an integer type.
func isInteger(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

// resetValue sets what the pointer v points to to its zero value, so that
// decoding again does not merge into what a failed decoding left.
func resetValue(v any) {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv.Elem().SetZero()
	}
}

// wholeNumbers returns raw with every number of its first JSON value that
// has a fraction or an exponent but is a whole number within the range of
// a 64-bit integer written as that integer (2.0 and 20e-1 as 2), and how
// many it rewrote. The values do not change: a float field decodes the
// same, and an integer field can now hold them.
func wholeNumbers(raw []byte) ([]byte, int) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out []byte
	last, n, depth := 0, 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case json.Delim:
			if t == '{' || t == '[' {
				depth++
			} else {
				depth--
			}
		case json.Number:
			if i, ok := wholeNumber(string(t)); ok {
				end := int(dec.InputOffset())
				out = append(append(out, raw[last:end-len(t)]...), i...)
				last, n = end, n+1
			}
		}
		if depth == 0 {
			break
		}
	}
	if n == 0 {
		return raw, 0
	}
	return append(out, raw[last:]...), n
}

// wholeNumber returns the integer the JSON number lit is when it has a
// fraction or an exponent and is a whole number within the range of a
// 64-bit integer, signed or not. It decides exactly, as JSON Schema does.
func wholeNumber(lit string) (string, bool) {
	if len(lit) > 64 || !strings.ContainsAny(lit, ".eE") {
		return "", false
	}
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		// Keep big.Rat from computing a power of ten of any size.
		if exp, err := strconv.Atoi(lit[i+1:]); err != nil || exp < -100 || exp > 100 {
			return "", false
		}
	}
	r, ok := new(big.Rat).SetString(lit)
	if !ok || !r.IsInt() || !(r.Num().IsInt64() || r.Num().IsUint64()) {
		return "", false
	}
	return r.Num().String(), true
}

// valuePath returns the path in raw, written as the paths of annotations
// are (lines[0].qty), of the value a decoding error is about, found by its
// offset: where a scalar ends, or just after the { or [ that opens an
// object or array. If no value is there, it falls back on the error's
// field names.
func valuePath(raw []byte, ute *json.UnmarshalTypeError) string {
	type frame struct {
		array bool
		index int
		key   string
		isKey bool // an object's next token is a key
	}
	var stack []frame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.array {
				fmt.Fprintf(&b, "[%d]", f.index)
				continue
			}
			p := JoinPath(b.String(), f.key)
			b.Reset()
			b.WriteString(p)
		}
		return b.String()
	}
	done := func() { // a value of the innermost container is complete
		if n := len(stack); n > 0 {
			if stack[n-1].array {
				stack[n-1].index++
			} else {
				stack[n-1].isKey = true
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return ute.Field
		}
		if n := len(stack); n > 0 && !stack[n-1].array && stack[n-1].isKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:n-1]
				done()
				continue
			}
			stack[n-1].key, stack[n-1].isKey = fmt.Sprint(tok), false
			continue
		}
		at := dec.InputOffset() == ute.Offset
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if at {
					return path()
				}
				stack = append(stack, frame{array: t == '[', isKey: t == '{'})
				continue
			default:
				stack = stack[:len(stack)-1]
			}
		default:
			if at {
				return path()
			}
		}
		done()
		if len(stack) == 0 {
			return ute.Field
		}
	}
}

// want says what a field of type t takes.
func want(t reflect.Type) string {
	if t == nil {
		return "not a value this field takes"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if t.Bits() == 64 {
			return "want a whole number, at most 9223372036854775807 either side of 0"
		}
		bits := t.Bits()
		return fmt.Sprintf("want a whole number from %d to %d", int64(-1)<<(bits-1), int64(1)<<(bits-1)-1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return fmt.Sprintf("want a whole number from 0 to %d", uint64(math.MaxUint64)>>(64-t.Bits()))
	case reflect.Float32:
		return "want a number within the range of a 32-bit float"
	case reflect.Float64:
		return "want " + jsonTypeNames["number"]
	case reflect.String:
		return "want " + jsonTypeNames["string"]
	case reflect.Bool:
		return "want " + jsonTypeNames["boolean"]
	case reflect.Slice, reflect.Array:
		return "want " + jsonTypeNames["array"]
	case reflect.Struct, reflect.Map:
		return "want " + jsonTypeNames["object"]
	}
	return "not a value this field takes"
}

// fastStrict is decodeStrictInto by the fast decoder alone, but for data
// it may misread (see longDigitRun).
func fastStrict(raw []byte, v any) error {
	if longDigitRun(raw) {
		return stdStrict(raw, v)
	}
	rest, err := fastjson.Parse(raw, v, fastjson.DisallowUnknownFields)
	if err == nil && len(bytes.TrimLeft(rest, " \t\r\n")) > 0 {
		err = errTrailing
	}
	return err
}

// stdStrict is decodeStrictInto by encoding/json alone.
func stdStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailing
	}
	return nil
}
