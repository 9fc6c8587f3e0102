package plait

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Error codes Plait itself puts in rejections. Applications add their own.
const (
	CodeConflict  = "conflict"  // expectedSeq did not match the instance's seq
	CodeForbidden = "forbidden" // the sender may not act on the instance
	CodeInternal  = "internal"  // the handler panicked or failed
	CodeInvalid   = "invalid"   // a field's value is not acceptable
	CodeRequired  = "required"  // a field is missing
	CodeTooLarge  = "too_large" // a value is larger than Plait can keep, such as an indexed field's
)

// FieldError annotates one field of a rejected command. Path names the field
// (for example "lines[0].qty"), Code is a stable machine-readable word and
// Message explains it to a person.
type FieldError struct {
	Path    string `json:"path"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// JoinPath appends an object member to a FieldError path: the key alone
// at the top ("name"), after a dot below it ("lines[0].qty"). A key that
// would make the path ambiguous — the empty key, or one holding a dot, a
// bracket, a quote or a backslash — is written as a quoted index instead
// (lines[0][""], ["a.b"]), so that {"a.b":1} and {"a":{"b":1}} never share
// a path and no path stands for the data itself ("") by mistake.
func JoinPath(parent, key string) string {
	switch {
	case key == "" || strings.ContainsAny(key, `.[]"\`):
		return parent + "[" + quoteKey(key) + "]"
	case parent == "":
		return key
	}
	return parent + "." + key
}

// quoteKey writes key as a JSON string.
func quoteKey(key string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(key); err != nil {
		return `""` // a string always encodes
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Rejection is the error a decide function returns to reject a command. The
// command is recorded as rejected with these annotations, and no event.
type Rejection struct {
	Errors []FieldError
}

// Error lists the annotations.
func (r *Rejection) Error() string {
	parts := make([]string, len(r.Errors))
	for i, e := range r.Errors {
		parts[i] = e.Path + ": " + e.Code + ": " + e.Message
	}
	return "plait: rejected: " + strings.Join(parts, "; ")
}

// Reject returns a rejection with a single annotation.
func Reject(path, code, message string) error {
	return &Rejection{Errors: []FieldError{{Path: path, Code: code, Message: message}}}
}

// CheckExpectedSeq returns the rejection of a command whose ExpectedSeq is
// set and is not seq, the instance's current one, or nil: the check the
// engine makes before decide runs.
func CheckExpectedSeq(cmd Command, seq int64) *Rejection {
	if cmd.ExpectedSeq == nil || *cmd.ExpectedSeq == seq {
		return nil
	}
	msg := fmt.Sprintf("the %s was changed meanwhile: you saw version %d, it is now at version %d", cmd.Type, *cmd.ExpectedSeq, seq)
	if *cmd.ExpectedSeq > seq {
		msg = fmt.Sprintf("the %s has no version %d: it is at version %d", cmd.Type, *cmd.ExpectedSeq, seq)
	}
	return &Rejection{Errors: []FieldError{{Path: "expectedSeq", Code: CodeConflict, Message: msg}}}
}

// Problems collects annotations while a decide function validates a command.
// The zero value is ready to use.
type Problems struct {
	errs []FieldError
}

// Add records one annotation.
func (p *Problems) Add(path, code, message string) {
	p.errs = append(p.errs, FieldError{Path: path, Code: code, Message: message})
}

// Err returns a *Rejection carrying every annotation added, or nil if none was.
func (p *Problems) Err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return &Rejection{Errors: append([]FieldError(nil), p.errs...)}
}

// Errors returned by the Go API for input that is not a command at all. They
// are returned before anything is stored.
var (
	ErrUnknownType    = errors.New("plait: unknown aggregate type")
	ErrUnknownCommand = errors.New("plait: unknown command name")
	ErrBadPayload     = errors.New("plait: command data does not decode")
	ErrBadID          = errors.New("plait: invalid id")
	ErrForbidden      = errors.New("plait: forbidden")
	ErrNotFound       = errors.New("plait: not found")
	ErrStopped        = errors.New("plait: engine stopped")
)

// EnvelopeError says what is wrong with a command envelope. It wraps one of
// the sentinel errors above, so callers can branch with errors.Is.
type EnvelopeError struct {
	Field  string // the envelope field at fault, such as "name" or "data"
	Detail string
	Err    error
}

// Error says what is wrong with which field, after the kind of error.
func (e *EnvelopeError) Error() string {
	return e.Err.Error() + ": " + e.Field + ": " + e.Detail
}

// Unwrap returns the sentinel error.
func (e *EnvelopeError) Unwrap() error { return e.Err }
