package plait

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schema declares the JSON Schema (draft 2020-12 unless the schema says
// otherwise) that the data of command must satisfy. It is compiled when the
// type is built — a schema that does not compile, refers to anything
// outside itself or names a command the type does not handle is reported
// by [Aggregate.Err] and [App.Validate] — and checked before the command is
// stored, so clients get structural annotations ({path, code, message},
// with codes such as "schema:minimum") without a round trip through decide.
// The HTTP API serves the schemas, so clients can validate before they
// submit.
//
// A schema states the shape; the rules that need the instance's state or
// that say more than a shape (an email address that exists, a status that
// may move) stay in decide.
func Schema[S any](command, schema string) Option[S] {
	return func(a *Aggregate[S]) {
		if a.schemas == nil {
			a.schemas = map[string]*commandSchema{}
		}
		if _, dup := a.schemas[command]; dup {
			a.errs = append(a.errs, fmt.Errorf("plait: %s: command %q: schema declared twice", a.typ, command))
			return
		}
		cs, err := compileSchema(a.typ+"/"+command, []byte(schema))
		if err != nil {
			a.errs = append(a.errs, fmt.Errorf("plait: %s: schema of command %q: %w", a.typ, command, err))
			return
		}
		a.schemas[command] = cs
	}
}

// CommandSchemas is a [Definition] whose commands may have JSON Schemas.
// *Aggregate[S] implements it.
type CommandSchemas interface {
	// CommandSchema returns the JSON Schema declared for command, as
	// declared, and whether there is one.
	CommandSchema(command string) (json.RawMessage, bool)
}

// CommandSchema returns the JSON Schema declared for command with [Schema].
func (a *Aggregate[S]) CommandSchema(command string) (json.RawMessage, bool) {
	cs, ok := a.schemas[command]
	if !ok {
		return nil, false
	}
	return cs.source, true
}

// SchemaError is what a command's data violates of its JSON Schema: one
// annotation per violation, with the path of the value at fault
// ("lines[0].qty", "" for the data as a whole) and the code "schema:" and
// the keyword ("schema:minimum", "schema:required"). A value the Go type
// of the data cannot hold (a string or a fraction for an integer, a
// number beyond its range) is a SchemaError too, with the code
// [CodeInvalid], whether or not the command has a schema. It wraps
// [ErrBadPayload]: such data is not a command of the application, and
// nothing is stored.
type SchemaError struct {
	Errors []FieldError
}

// Error says the data does not match its schema; Detail says how.
func (e *SchemaError) Error() string { return "plait: command data does not match its schema" }

// Detail lists the violations, path first.
func (e *SchemaError) Detail() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		p := fe.Path
		if p == "" {
			p = "(the data)"
		}
		parts[i] = p + ": " + fe.Message + " (" + fe.Code + ")"
	}
	return strings.Join(parts, "; ")
}

// Unwrap returns ErrBadPayload.
func (e *SchemaError) Unwrap() error { return ErrBadPayload }

// commandSchema is one compiled schema and its source.
type commandSchema struct {
	source   json.RawMessage
	compiled *jsonschema.Schema
}

// noLoader refuses every external reference: a command's schema is
// self-contained, and compiling it reads no file and no network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s: a command's schema may not refer outside itself", url)
}

func compileSchema(name string, src []byte) (*commandSchema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	url := "plait:///schemas/" + name + ".json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	compiled, err := c.Compile(url)
	if err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, src); err != nil {
		return nil, err
	}
	return &commandSchema{source: compact.Bytes(), compiled: compiled}, nil
}

// checkSchemas records a schema declared for a command the type does not
// handle.
func (a *Aggregate[S]) checkSchemas() {
	names := make([]string, 0, len(a.schemas))
	for n := range a.schemas {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, ok := a.deciders[n]; !ok {
			a.errs = append(a.errs, fmt.Errorf("plait: %s: schema declared for command %q, which no Handle declares", a.typ, n))
		}
	}
}

// validateSchema checks data against command's schema, if it has one, and
// returns a *SchemaError for what it violates, or the validator's error.
// Data that is not JSON passes: the strict decoding that follows says so.
func (a *Aggregate[S]) validateSchema(command string, data json.RawMessage) error {
	cs, ok := a.schemas[command]
	if !ok {
		return nil
	}
	if d := bytes.TrimSpace(data); len(d) == 0 || string(d) == "null" {
		data = json.RawMessage("{}") // no data: the command's fields are all absent
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil // not JSON: the strict decoding that follows says so
	}
	err = cs.compiled.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("validate against the schema: %w", err)
	}
	var errs []FieldError
	collectViolations(ve, &errs)
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Path < errs[j].Path })
	return &SchemaError{Errors: errs}
}

var schemaPrinter = message.NewPrinter(language.English)

// collectViolations flattens the tree of a validation error into one
// annotation per leaf, the violations themselves.
func collectViolations(ve *jsonschema.ValidationError, out *[]FieldError) {
	if len(ve.Causes) > 0 {
		for _, c := range ve.Causes {
			collectViolations(c, out)
		}
		return
	}
	path := instancePath(ve.InstanceLocation)
	code := "schema"
	if kw := ve.ErrorKind.KeywordPath(); len(kw) > 0 {
		code = "schema:" + kw[len(kw)-1]
	}
	msg := ve.ErrorKind.LocalizedString(schemaPrinter)
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		for _, m := range k.Missing {
			*out = append(*out, FieldError{Path: JoinPath(path, m), Code: code, Message: "this field is required"})
		}
		return
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			*out = append(*out, FieldError{Path: JoinPath(path, p), Code: code, Message: "this field is not allowed here"})
		}
		return
	case *kind.Type:
		msg = typeMessage(k)
	}
	*out = append(*out, FieldError{Path: path, Code: code, Message: msg})
}

// jsonTypeNames are the JSON Schema types, for people.
var jsonTypeNames = map[string]string{
	"integer": "a whole number", "number": "a number", "string": "text", "boolean": "true or false",
	"array": "a list", "object": "an object", "null": "null",
}

// typeMessage says, for people, what a value of the wrong JSON type should
// have been: "want a whole number, not text". Null is left out of what is
// wanted, as null stands for a value left out.
func typeMessage(k *kind.Type) string {
	var want []string
	for _, w := range k.Want {
		if w != "null" {
			want = append(want, jsonTypeNames[w])
		}
	}
	if len(want) == 0 {
		return "want null"
	}
	got := jsonTypeNames[k.Got]
	if k.Got == "number" && slices.Contains(k.Want, "integer") {
		got = "a number with a fraction"
	}
	if got == "" {
		got = k.Got
	}
	return "want " + strings.Join(want, " or ") + ", not " + got
}

// instancePath writes a JSON location as the paths of annotations do:
// lines[0].qty.
func instancePath(loc []string) string {
	path := ""
	for _, seg := range loc {
		if _, err := strconv.Atoi(seg); err == nil {
			path += "[" + seg + "]"
			continue
		}
		path = JoinPath(path, seg)
	}
	return path
}
