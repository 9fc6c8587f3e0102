package plait

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

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
func decodeStrictInto(raw []byte, v any) error {
	err := fastStrict(raw, v)
	if err == nil {
		return nil
	}
	if stdErr := stdStrict(raw, v); stdErr != nil {
		return stdErr
	}
	return err
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
