package plait

import (
	"encoding/json"
	"errors"
	"testing"
)

// The typed path: a command a reactor makes with Send carries its data as
// the Go value, which the handler takes as it is while Data is still the
// bytes Send encoded. A field JSON leaves out shows which path was taken.

type note struct {
	Text string `json:"text"`
	Memo string `json:"-"`
}

type noteState struct {
	Text string `json:"text"`
	Memo string `json:"memo"`
}

func noteAggregate(opts ...Option[noteState]) *Aggregate[noteState] {
	return NewAggregate("note", append([]Option[noteState]{
		Handle("write", func(s noteState, c Cmd[note]) ([]Change, error) {
			return []Change{Emit("written", noteState{Text: c.Data.Text, Memo: c.Data.Memo})}, nil
		}),
		Apply("written", func(s noteState, e noteState) noteState { return e }),
	}, opts...)...)
}

func reactedNote(t *testing.T, n note) Command {
	t.Helper()
	r := NewReactor("notes", On("source", "said", func(e Evt[struct{}]) []Dispatch {
		return []Dispatch{Send("note", "n1", "write", n)}
	}))
	cmds, err := r.React(Event{ID: "e1", Type: "source", AggregateID: "s1", Seq: 1, Name: "said", Data: json.RawMessage(`{}`)})
	if err != nil || len(cmds) != 1 {
		t.Fatalf("react: %v %v", cmds, err)
	}
	return cmds[0]
}

func TestTypedCommandSkipsDecodingUntilDataChanges(t *testing.T) {
	a := noteAggregate()
	cmd := reactedNote(t, note{Text: "hi", Memo: "kept"})
	changes, err := a.Decide(Current{}, cmd)
	if err != nil || len(changes) != 1 {
		t.Fatalf("decide: %v %v", changes, err)
	}
	if got := string(changes[0].Data); got != `{"text":"hi","memo":"kept"}` {
		t.Fatalf("the handler did not take the value Send encoded: %s", got)
	}

	// Data replaced by other bytes (as sealing does): decoded from Data.
	cmd.Data = append(json.RawMessage(nil), cmd.Data...)
	changes, err = a.Decide(Current{}, cmd)
	if err != nil || string(changes[0].Data) != `{"text":"hi","memo":""}` {
		t.Fatalf("replaced data was not decoded: %v %v", changes, err)
	}
}

func TestTypedChangeFoldsWithoutDecodingUntilDataChanges(t *testing.T) {
	a := noteAggregate()
	h, err := a.Hold(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := Emit("written", noteState{Text: "a", Memo: "m"})
	if err := h.Apply([]Change{c}); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.Encode(); string(st) != `{"text":"a","memo":"m"}` {
		t.Fatalf("held state %s", st)
	}
	c.Data = json.RawMessage(`{"text":"b","memo":"n"}`)
	if err := h.Apply([]Change{c}); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.Encode(); string(st) != `{"text":"b","memo":"n"}` {
		t.Fatalf("replaced data was not decoded: %s", st)
	}
}

func TestCheckOfStillValidatesWhatTheValueCannotVouchFor(t *testing.T) {
	plain := noteAggregate()
	cmd := reactedNote(t, note{Text: "hi"})
	if err := CheckOf(plain, cmd); err != nil {
		t.Fatalf("a typed command refused: %v", err)
	}
	cmd.Name = "erase"
	if err := CheckOf(plain, cmd); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("unknown command: %v", err)
	}

	// A JSON Schema applies to the encoded data, value or not.
	strict := noteAggregate(Schema[noteState]("write", `{"type":"object","properties":{"text":{"type":"string","minLength":5}}}`))
	cmd = reactedNote(t, note{Text: "hi"})
	var se *SchemaError
	if err := CheckOf(strict, cmd); !errors.As(err, &se) {
		t.Fatalf("schema not applied to a typed command: %v", err)
	}

	// Data that no longer matches the value is checked as bytes.
	cmd = reactedNote(t, note{Text: "hello"})
	cmd.Data = json.RawMessage(`{"text":"hello","extra":1}`)
	if err := CheckOf(plain, cmd); !errors.Is(err, ErrBadPayload) {
		t.Fatalf("replaced data not checked: %v", err)
	}
}
