package plaittest_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/plaittest"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// passes checks that check reports nothing.
func passes(t *testing.T, check func(tb testing.TB)) {
	t.Helper()
	r := &recorder{}
	check(r)
	if len(r.failures) > 0 {
		t.Errorf("want no failure, got %q", r.failures)
	}
}

// fails checks that check reports a failure mentioning want.
func fails(t *testing.T, want string, check func(tb testing.TB)) {
	t.Helper()
	r := &recorder{}
	check(r)
	if len(r.failures) == 0 {
		t.Errorf("want a failure mentioning %q, got none", want)
	} else if all := strings.Join(r.failures, "\n"); !strings.Contains(all, want) {
		t.Errorf("want a failure mentioning %q, got %q", want, all)
	}
}

// Stamp is the data of the stamp command and the stamped event of a tiny
// aggregate type that records who stamped which instance when.
type Stamp struct {
	Who  string    `json:"who"`
	ID   string    `json:"id"`
	At   time.Time `json:"at"`
	Note string    `json:"note,omitempty"`
}

var stamps = plait.NewAggregate("stamps",
	plait.Handle("stamp", func(s []Stamp, c plait.Cmd[Stamp]) ([]plait.Change, error) {
		var p plait.Problems
		switch c.Data.Note {
		case "twice":
			p.Add("note", "bad", "no twice")
			p.Add("who", "bad", "no who")
		case "silent":
			p.Add("note", "bad", "")
		case "panic":
			panic("boom")
		case "nothing":
			return nil, nil
		case "lineage":
			src := plait.Lineage{Type: "src", AggregateID: "s1", Seq: 4}
			return []plait.Change{plait.Emit("stamped", Stamp{Who: c.User}).From(src, "who")}, nil
		}
		if err := p.Err(); err != nil {
			return nil, err
		}
		return []plait.Change{plait.Emit("stamped", Stamp{Who: c.User, ID: c.AggregateID, At: c.At})}, nil
	}),
	plait.Apply("stamped", func(s []Stamp, e Stamp) []Stamp { return append(s, e) }),
)

var stamped = plait.Emit("stamped", Stamp{Who: plaittest.DefaultUser, ID: plaittest.DefaultID, At: plaittest.FixedTime})

func TestThenEvents(t *testing.T) {
	passes(t, func(tb testing.TB) {
		plaittest.Given(stamps).When("stamp", Stamp{}).ThenEvents(tb, stamped)
	})
	passes(t, func(tb testing.TB) { // data compares as JSON values, whatever its Go type
		plaittest.Given(stamps).When("stamp", Stamp{}).ThenEvents(tb, plait.Emit("stamped",
			map[string]any{"at": plaittest.FixedTime, "id": plaittest.DefaultID, "who": plaittest.DefaultUser}))
	})
	fails(t, "events differ", func(tb testing.TB) {
		plaittest.Given(stamps).When("stamp", Stamp{}).ThenEvents(tb, plait.Emit("stamped", Stamp{Who: "someone else"}))
	})
	fails(t, "events differ", func(tb testing.TB) {
		plaittest.Given(stamps).When("stamp", Stamp{}).ThenEvents(tb, plait.Emit("other", Stamp{}))
	})
	fails(t, "events differ", func(tb testing.TB) {
		plaittest.Given(stamps).When("stamp", Stamp{}).ThenEvents(tb, stamped, stamped)
	})
	fails(t, "events differ", func(tb testing.TB) {
		plaittest.Given(stamps).When("stamp", Stamp{}).ThenNoEvents(tb)
	})
	fails(t, `rejected with "note" bad (no twice)`, func(tb testing.TB) {
		plaittest.Given(stamps).When("stamp", Stamp{Note: "twice"}).ThenEvents(tb, stamped)
	})
	passes(t, func(tb testing.TB) {
		plaittest.Given(stamps).When("stamp", Stamp{Note: "nothing"}).ThenNoEvents(tb)
	})
}

func TestThenEventsComparesLineage(t *testing.T) {
	src := plait.Lineage{Type: "src", AggregateID: "s1", Seq: 4}
	withLineage := plait.Emit("stamped", Stamp{Who: plaittest.DefaultUser})
	passes(t, func(tb testing.TB) {
		plaittest.Given(stamps).When("stamp", Stamp{Note: "lineage"}).ThenEvents(tb, withLineage.From(src, "who"))
	})
	fails(t, "lineage", func(tb testing.TB) {
		plaittest.Given(stamps).When("stamp", Stamp{Note: "lineage"}).ThenEvents(tb, withLineage)
	})
	fails(t, "events differ", func(tb testing.TB) {
		plaittest.Given(stamps).When("stamp", Stamp{Note: "lineage"}).ThenEvents(tb, withLineage.From(src, "id"))
	})
}

// Lineage is the given events' lineage updated by the emitted events',
// field by field, and the scenario's own is left as it was.
func TestResultLineage(t *testing.T) {
	older := plait.Lineage{Type: "src", AggregateID: "s0", Seq: 1}
	given := plaittest.Given(stamps, plait.Emit("stamped", Stamp{Who: "ann"}).From(older, "who", "note"))
	r := given.When("stamp", Stamp{Note: "lineage"})
	want := map[string]plait.Lineage{"who": {Type: "src", AggregateID: "s1", Seq: 4}, "note": older}
	if got := r.Lineage(); !reflect.DeepEqual(got, want) {
		t.Errorf("Lineage = %v, want %v", got, want)
	}
	if got := given.When("stamp", Stamp{}).Lineage(); !reflect.DeepEqual(got, map[string]plait.Lineage{"who": older, "note": older}) {
		t.Errorf("after an event without lineage, Lineage = %v, want the given one", got)
	}
	if got := plaittest.Given(stamps).When("stamp", Stamp{}).Lineage(); got != nil {
		t.Errorf("with no lineage anywhere, Lineage = %v, want nil", got)
	}
}

func TestGivenFoldsTheHistory(t *testing.T) {
	first := Stamp{Who: "ann"}
	passes(t, func(tb testing.TB) {
		plaittest.Given(stamps, plait.Emit("stamped", first)).
			When("stamp", Stamp{}).
			ThenState(tb, []Stamp{first, {Who: plaittest.DefaultUser, ID: plaittest.DefaultID, At: plaittest.FixedTime}})
	})
	fails(t, "state differs", func(tb testing.TB) {
		plaittest.Given(stamps, plait.Emit("stamped", first)).When("stamp", Stamp{}).ThenState(tb, []Stamp{first})
	})
	fails(t, "given event 1 (unknown)", func(tb testing.TB) {
		plaittest.Given(stamps, plait.Emit("unknown", first)).When("stamp", Stamp{}).ThenEvents(tb, stamped)
	})
}

func TestTheEnvelopeCanBeSet(t *testing.T) {
	at := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	base := plaittest.Given(stamps)
	passes(t, func(tb testing.TB) {
		base.For("s9").By("bob").At(at).When("stamp", Stamp{}).
			ThenEvents(tb, plait.Emit("stamped", Stamp{Who: "bob", ID: "s9", At: at}))
		base.When("stamp", Stamp{}).ThenEvents(tb, stamped) // base is unchanged
		base.WhenCommand(plait.Command{Name: "stamp", AggregateID: "s2", User: "cy", At: at, Data: json.RawMessage(`{}`)}).
			ThenEvents(tb, plait.Emit("stamped", Stamp{Who: "cy", ID: "s2", At: at}))
	})
	fails(t, `command for type "other"`, func(tb testing.TB) {
		base.WhenCommand(plait.Command{Type: "other", Name: "stamp"}).ThenNoEvents(tb)
	})
}

// A command carrying the version its sender saw is decided only if the
// instance is still at that version; otherwise it is a conflict.
func TestExpectedSeqIsChecked(t *testing.T) {
	once := plaittest.Given(stamps, stamped)
	passes(t, func(tb testing.TB) {
		once.Expecting(1).When("stamp", Stamp{}).ThenEvents(tb, stamped)
		once.Expecting(0).When("stamp", Stamp{}).ThenRejectedWith(tb, plait.FieldError{Path: "expectedSeq", Code: plait.CodeConflict,
			Message: "the stamps was changed meanwhile: you saw version 0, it is now at version 1"})
		once.Expecting(3).When("stamp", Stamp{}).ThenRejected(tb, plait.CodeConflict)
		saw := int64(2)
		once.WhenCommand(plait.Command{Name: "stamp", Data: json.RawMessage(`{}`), ExpectedSeq: &saw}).ThenRejected(tb, plait.CodeConflict)
	})
}

func TestThenRejected(t *testing.T) {
	twice := plaittest.Given(stamps).When("stamp", Stamp{Note: "twice"})
	passes(t, func(tb testing.TB) {
		twice.ThenRejected(tb).ThenRejected(tb, "bad", "bad")
		twice.ThenRejectedWith(tb, plaittest.Field("who", "bad"), plaittest.Field("note", "bad"))
		twice.ThenRejectedWith(tb, plait.FieldError{Path: "who", Code: "bad", Message: "no who"}, plaittest.Field("note", "bad"))
	})
	fails(t, "rejected with codes [bad bad], want [bad]", func(tb testing.TB) { twice.ThenRejected(tb, "bad") })
	fails(t, "annotations differ", func(tb testing.TB) { twice.ThenRejectedWith(tb, plaittest.Field("who", "bad")) })
	fails(t, "annotations differ", func(tb testing.TB) {
		twice.ThenRejectedWith(tb, plaittest.Field("who", "bad"), plaittest.Field("note", "worse"))
	})
	fails(t, "annotations differ", func(tb testing.TB) {
		twice.ThenRejectedWith(tb, plait.FieldError{Path: "who", Code: "bad", Message: "other"}, plaittest.Field("note", "bad"))
	})
	fails(t, "want a rejection", func(tb testing.TB) { plaittest.Given(stamps).When("stamp", Stamp{}).ThenRejected(tb) })
	fails(t, "has no message", func(tb testing.TB) {
		plaittest.Given(stamps).When("stamp", Stamp{Note: "silent"}).ThenRejected(tb, "bad")
	})
}

func TestThenError(t *testing.T) {
	passes(t, func(tb testing.TB) {
		plaittest.Given(stamps).When("stamp", map[string]any{"extra": 1}).ThenError(tb, plait.ErrBadPayload)
		plaittest.Given(stamps).When("unstamp", Stamp{}).ThenError(tb, plait.ErrUnknownCommand)
	})
	fails(t, "want the error", func(tb testing.TB) {
		plaittest.Given(stamps).When("stamp", Stamp{Note: "twice"}).ThenError(tb, plait.ErrBadPayload)
	})
	fails(t, "panicked: boom", func(tb testing.TB) {
		plaittest.Given(stamps).When("stamp", Stamp{Note: "panic"}).ThenEvents(tb, stamped)
	})
}
