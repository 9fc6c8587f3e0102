package plaittest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plaithq/plait"
)

// FixedTime is the At of every command a scenario sends unless [Scenario.At]
// sets another.
var FixedTime = time.Date(2026, time.January, 2, 15, 4, 5, 0, time.UTC)

// Default envelope values of the commands a scenario sends.
const (
	DefaultID      = "test-1" // the aggregate instance's id
	DefaultUser    = "tester" // the user sending the command
	DefaultCommand = "cmd-1"  // the command's id and correlation id
)

// Scenario is one aggregate instance with a history, ready for a command.
// Make it with [Given]. Its methods return a modified copy, so a scenario can
// be shared by several tests.
type Scenario struct {
	def     plait.Definition
	state   json.RawMessage
	seq     int64
	lineage map[string]plait.Lineage
	id      string
	user    string
	at      time.Time
	saw     *int64 // the commands' ExpectedSeq
	err     error
}

// Given starts a scenario: an instance of the aggregate type def whose
// history is the given events, oldest first, folded with def's Evolve. With
// no events the instance is new (nil state). Make the events with
// [plait.Emit].
func Given(def plait.Definition, history ...plait.Change) *Scenario {
	s := &Scenario{def: def, id: DefaultID, user: DefaultUser, at: FixedTime}
	for i, c := range history {
		state, err := def.Evolve(s.state, c.Name, c.Data)
		if err != nil {
			s.err = fmt.Errorf("plaittest: given event %d (%s): %w", i+1, c.Name, err)
			break
		}
		s.state = state
		s.seq++
		if len(c.Lineage) > 0 && s.lineage == nil {
			s.lineage = map[string]plait.Lineage{}
		}
		maps.Copy(s.lineage, c.Lineage)
	}
	return s
}

// For returns the scenario with the instance's id set to id.
func (s *Scenario) For(id string) *Scenario {
	c := *s
	c.id = id
	return &c
}

// By returns the scenario with commands sent by user.
func (s *Scenario) By(user string) *Scenario {
	c := *s
	c.user = user
	return &c
}

// At returns the scenario with commands sent at time at.
func (s *Scenario) At(at time.Time) *Scenario {
	c := *s
	c.at = at
	return &c
}

// Expecting returns the scenario with commands carrying ExpectedSeq seq, the
// version of the instance their sender saw: one that is not the seq of the
// given history is rejected with plait.CodeConflict, as the engine does.
func (s *Scenario) Expecting(seq int64) *Scenario {
	c := *s
	c.saw = &seq
	return &c
}

// When sends the command name with data, encoded as JSON, to the instance.
func (s *Scenario) When(name string, data any) *Result {
	raw, err := json.Marshal(data)
	if err != nil {
		return &Result{setup: fmt.Errorf("plaittest: encode %s data: %w", name, err)}
	}
	return s.WhenCommand(plait.Command{
		ID: DefaultCommand, Type: s.def.Type(), AggregateID: s.id, Name: name, Data: raw,
		CorrelationID: DefaultCommand, User: s.user, At: s.at, ExpectedSeq: s.saw,
	})
}

// WhenCommand sends cmd as it is, for example a command a reactor returned.
// An empty Type is taken to be the scenario's type. A cmd.ExpectedSeq other
// than the seq of the given history (the number of its events) rejects it
// with plait.CodeConflict before decide runs, as the engine does.
func (s *Scenario) WhenCommand(cmd plait.Command) *Result {
	if cmd.Type == "" {
		cmd.Type = s.def.Type()
	}
	r := &Result{cmd: cmd, state: s.state, lineage: s.lineage, setup: s.err}
	if r.setup != nil {
		return r
	}
	if cmd.Type != s.def.Type() {
		r.setup = fmt.Errorf("plaittest: command for type %q sent to a %q scenario", cmd.Type, s.def.Type())
		return r
	}
	if r.err = s.def.CheckCommand(cmd.Name, cmd.Data); r.err != nil {
		return r
	}
	if rej := plait.CheckExpectedSeq(cmd, s.seq); rej != nil {
		r.err = rej
		return r
	}
	r.changes, r.err = decide(s.def, plait.Current{Seq: s.seq, State: s.state, Lineage: s.lineage}, cmd)
	if r.err != nil {
		r.changes = nil
		return r
	}
	for _, c := range r.changes {
		state, err := s.def.Evolve(r.state, c.Name, c.Data)
		if err != nil {
			r.err = fmt.Errorf("plaittest: evolve %s: %w", c.Name, err)
			return r
		}
		r.state = state
		if len(c.Lineage) > 0 {
			// The given lineage is the scenario's: a copy takes the changes.
			r.lineage = maps.Clone(r.lineage)
			if r.lineage == nil {
				r.lineage = map[string]plait.Lineage{}
			}
			maps.Copy(r.lineage, c.Lineage)
		}
	}
	return r
}

func decide(def plait.Definition, current plait.Current, cmd plait.Command) (changes []plait.Change, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("plaittest: %s.%s panicked: %v", cmd.Type, cmd.Name, p)
		}
	}()
	return def.Decide(current, cmd)
}

// Result is the outcome of the command a scenario sent. Its Then methods
// report a mismatch with t.Errorf and return the result, so checks chain.
type Result struct {
	cmd     plait.Command
	changes []plait.Change
	state   json.RawMessage
	lineage map[string]plait.Lineage
	err     error // the command's error: a *plait.Rejection or a failure
	setup   error // the scenario itself is broken
}

// Changes returns the events the command emitted.
func (r *Result) Changes() []plait.Change { return r.changes }

// State returns the instance's state after the command: the emitted events
// folded into the given state.
func (r *Result) State() json.RawMessage { return r.state }

// Lineage returns the source of each field of a view instance after the
// command: the given events' lineage, updated by the emitted events', as
// the engine keeps it beside the state (and a list item shows it). Nil
// when no event carried any. The map is the caller's.
func (r *Result) Lineage() map[string]plait.Lineage { return maps.Clone(r.lineage) }

// Err returns the command's error: a *plait.Rejection when it was rejected,
// another error when it failed, nil when it was accepted.
func (r *Result) Err() error {
	if r.setup != nil {
		return r.setup
	}
	return r.err
}

// ThenEvents checks that the command was accepted and emitted exactly the
// want events, in order: same names, same data (as JSON values) and same
// lineage. With no want it checks that nothing was emitted.
func (r *Result) ThenEvents(t testing.TB, want ...plait.Change) *Result {
	t.Helper()
	if !r.accepted(t, "events") {
		return r
	}
	same := len(r.changes) == len(want)
	for i := 0; same && i < len(want); i++ {
		g, w := r.changes[i], want[i]
		same = g.Name == w.Name && sameJSON(g.Data, w.Data) && maps.Equal(g.Lineage, w.Lineage)
	}
	if !same {
		t.Errorf("%s: events differ\n got: %s\nwant: %s", r.label(), describeChanges(r.changes), describeChanges(want))
	}
	return r
}

// ThenNoEvents checks that the command was accepted and emitted nothing.
func (r *Result) ThenNoEvents(t testing.TB) *Result {
	t.Helper()
	return r.ThenEvents(t)
}

// ThenState checks that the command was accepted and that the state after it
// equals want, compared as JSON values.
func (r *Result) ThenState(t testing.TB, want any) *Result {
	t.Helper()
	if !r.accepted(t, "a state") {
		return r
	}
	raw, err := json.Marshal(want)
	if err != nil {
		t.Errorf("plaittest: encode the wanted state: %v", err)
		return r
	}
	if !sameJSON(r.state, raw) {
		t.Errorf("%s: state differs\n got: %s\nwant: %s", r.label(), r.state, raw)
	}
	return r
}

// ThenRejected checks that the command was rejected with annotations whose
// codes are exactly codes, in any order and whatever their paths. With no
// codes any rejection passes. Every annotation must have a message.
func (r *Result) ThenRejected(t testing.TB, codes ...string) *Result {
	t.Helper()
	got, ok := r.rejected(t)
	if !ok || len(codes) == 0 {
		return r
	}
	gotCodes := make([]string, len(got))
	for i, e := range got {
		gotCodes[i] = e.Code
	}
	wantCodes := slices.Clone(codes)
	slices.Sort(gotCodes)
	slices.Sort(wantCodes)
	if !slices.Equal(gotCodes, wantCodes) {
		t.Errorf("%s: rejected with codes %v, want %v", r.label(), gotCodes, wantCodes)
	}
	return r
}

// ThenRejectedWith checks that the command was rejected with exactly the
// want annotations, in any order: same path and code, and same message where
// want has one. Make them with [Field]. Every annotation must have a message.
func (r *Result) ThenRejectedWith(t testing.TB, want ...plait.FieldError) *Result {
	t.Helper()
	got, ok := r.rejected(t)
	if !ok {
		return r
	}
	unmatched := slices.Clone(got)
	same := len(got) == len(want)
	for _, w := range want {
		i := slices.IndexFunc(unmatched, func(g plait.FieldError) bool {
			return g.Path == w.Path && g.Code == w.Code && (w.Message == "" || g.Message == w.Message)
		})
		if i < 0 {
			same = false
			break
		}
		unmatched = slices.Delete(unmatched, i, i+1)
	}
	if !same {
		t.Errorf("%s: annotations differ\n got: %s\nwant: %s", r.label(), describeErrors(got), describeErrors(want))
	}
	return r
}

// ThenError checks that the command failed with an error that is not a
// rejection and matches target by errors.Is, such as plait.ErrBadPayload for
// data that does not decode.
func (r *Result) ThenError(t testing.TB, target error) *Result {
	t.Helper()
	if r.setup != nil {
		t.Errorf("%v", r.setup)
		return r
	}
	var rej *plait.Rejection
	if r.err == nil || errors.As(r.err, &rej) || !errors.Is(r.err, target) {
		t.Errorf("%s: %s, want the error %v", r.label(), r.describe(), target)
	}
	return r
}

// Field is an annotation for [Result.ThenRejectedWith]: the path of the
// field at fault and the code, with any message.
func Field(path, code string) plait.FieldError {
	return plait.FieldError{Path: path, Code: code}
}

func (r *Result) accepted(t testing.TB, what string) bool {
	t.Helper()
	if r.setup != nil {
		t.Errorf("%v", r.setup)
		return false
	}
	if r.err != nil {
		t.Errorf("%s: %s, want %s", r.label(), r.describe(), what)
		return false
	}
	return true
}

func (r *Result) rejected(t testing.TB) ([]plait.FieldError, bool) {
	t.Helper()
	if r.setup != nil {
		t.Errorf("%v", r.setup)
		return nil, false
	}
	var rej *plait.Rejection
	if !errors.As(r.err, &rej) {
		t.Errorf("%s: %s, want a rejection", r.label(), r.describe())
		return nil, false
	}
	for _, e := range rej.Errors {
		if e.Message == "" {
			t.Errorf("%s: annotation %s: %s has no message", r.label(), e.Path, e.Code)
		}
	}
	return rej.Errors, true
}

// label names the command in messages: its name and, shortened, its data.
func (r *Result) label() string {
	data := string(r.cmd.Data)
	if runes := []rune(data); len(runes) > 120 {
		data = string(runes[:117]) + "..."
	}
	return r.cmd.Name + " " + data
}

func (r *Result) describe() string {
	var rej *plait.Rejection
	switch {
	case r.err == nil:
		return "accepted with events " + describeChanges(r.changes)
	case errors.As(r.err, &rej):
		return "rejected with " + describeErrors(rej.Errors)
	default:
		return "failed: " + r.err.Error()
	}
}

func describeChanges(cs []plait.Change) string {
	if len(cs) == 0 {
		return "(none)"
	}
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.Name + " " + string(c.Data)
		if len(c.Lineage) > 0 {
			l, _ := json.Marshal(c.Lineage)
			parts[i] += " lineage " + string(l)
		}
	}
	return strings.Join(parts, ", ")
}

func describeErrors(es []plait.FieldError) string {
	if len(es) == 0 {
		return "(none)"
	}
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = fmt.Sprintf("%q %s", e.Path, e.Code)
		if e.Message != "" {
			parts[i] += fmt.Sprintf(" (%s)", e.Message)
		}
	}
	return strings.Join(parts, ", ")
}

// sameJSON reports whether a and b encode the same JSON value.
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	return reflect.DeepEqual(x, y)
}
