package plait_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/plaithq/plait"
)

type noteV1 struct {
	Text string `json:"text"`
}

type noteV2 struct {
	Body string `json:"body"`
}

type noteV3 struct {
	Body string `json:"body"`
	Lang string `json:"lang"`
}

type noteState struct {
	Body, Lang string
}

func noteApp(version int, upcasters ...plait.Upcaster) plait.App {
	note := plait.NewAggregate("note",
		plait.Handle("write", func(s noteState, c plait.Cmd[noteV3]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("written", c.Data)}, nil
		}),
		plait.Apply("written", func(s noteState, e noteV3) noteState { return noteState(e) }),
		plait.Version[noteState]("written", version),
	)
	return plait.App{Name: "notes", Aggregates: []plait.Definition{note}, Upcasters: upcasters}
}

var (
	v1to2 = plait.UpcastAs("note", "written", 1, func(o noteV1) noteV2 { return noteV2{Body: o.Text} })
	v2to3 = plait.Upcast("note", "written", 2, func(old json.RawMessage) (json.RawMessage, error) {
		var o noteV2
		if err := json.Unmarshal(old, &o); err != nil {
			return nil, err
		}
		return json.Marshal(noteV3{Body: o.Body, Lang: "en"})
	})
)

func TestUpcasterChainsAreCompleteAndUnambiguous(t *testing.T) {
	for _, c := range []struct {
		name string
		app  plait.App
		want string // "" for valid
	}{
		{"complete", noteApp(3, v1to2, v2to3), ""},
		{"version 1 needs none", noteApp(1), ""},
		{"a hole", noteApp(3, v1to2), "no upcaster from version 2"},
		{"none at all", noteApp(2), "no upcaster from version 1"},
		{"twice", noteApp(3, v1to2, v2to3, v1to2), "registered twice"},
		{"beyond the current version", noteApp(2, v1to2, v2to3), "upcasters go from 1 to 1"},
		{"unknown type", noteApp(2, v1to2, plait.Upcast("nope", "x", 1, nil)), `no aggregate type "nope"`},
		{"no function", noteApp(2, plait.Upcast("note", "written", 1, nil)), "has no function"},
		{"bad version", noteApp(0), "want 1 or more"},
	} {
		err := c.app.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

func TestVersionOfAnEventNoApplyDeclaresIsAMistake(t *testing.T) {
	a := plait.NewAggregate("note",
		plait.Apply("written", func(s noteState, e noteV3) noteState { return s }),
		plait.Version[noteState]("writen", 2),
	)
	if err := a.Err(); err == nil || !strings.Contains(err.Error(), `"writen"`) {
		t.Fatalf("got %v, want the misspelt event named", err)
	}
	if a.EventVersion("written") != 1 {
		t.Errorf("written is at version %d, want the default 1", a.EventVersion("written"))
	}
}

func TestEventVersionOneIsNotWritten(t *testing.T) {
	b, _ := json.Marshal(plait.Event{ID: "x", Version: 0})
	if strings.Contains(string(b), "version") {
		t.Errorf("version 1 written: %s", b)
	}
	b, _ = json.Marshal(plait.Event{ID: "x", Version: 2})
	if !strings.Contains(string(b), `"version":2`) {
		t.Errorf("version 2 not written: %s", b)
	}
}

func TestPersonalCopyOfAFieldTheStateLacksIsAMistake(t *testing.T) {
	view := func(fields ...string) plait.App {
		return plait.App{Name: "notes", Aggregates: []plait.Definition{plait.NewAggregate("noteList",
			plait.AsView[noteV2](), plait.PersonalCopies[noteV2](fields...))}}
	}
	if err := view("body").Validate(); err != nil {
		t.Fatalf("a copy of a field the state has: %v", err)
	}
	if err := view("body", "author").Validate(); err == nil || !strings.Contains(err.Error(), `personal copy "author" is not a field of the state`) {
		t.Fatalf("a copy of a field the state lacks: %v", err)
	}
}
