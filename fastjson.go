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
func decodeJSON(raw []byte, v any) error { return fastjson.Unmarshal(raw, v) }

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

// fastStrict is decodeStrictInto by the fast decoder alone.
func fastStrict(raw []byte, v any) error {
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
