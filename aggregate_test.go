package plait

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// An event's data is stored as the decide function emitted it and decoded
// leniently when folded, so a decide function must emit what its Apply
// takes: the engine refuses the command otherwise, rather than store a
// field nothing reads.

type titled struct {
	Title string `json:"title"`
}

func titledAggregate(emit func(c Cmd[titled]) Change) *Aggregate[titled] {
	return NewAggregate("case",
		Handle("open", func(s titled, c Cmd[titled]) ([]Change, error) { return []Change{emit(c)}, nil }),
		Apply("opened", func(s titled, e titled) titled { return e }),
	)
}

func openCase(title string) Command {
	return Command{ID: "c1", Type: "case", AggregateID: "k1", Name: "open", Data: json.RawMessage(`{"title":"` + title + `"}`)}
}

func TestDecideRefusesEventDataItsApplyDoesNotTake(t *testing.T) {
	// The message, which the rejection (code internal) and the log
	// carry, names what is at fault.
	for name, c := range map[string]struct {
		data  any
		fault string
	}{
		"misspelt field": {map[string]any{"titl": "Leak"}, "titl"},
		"wrong kind":     {map[string]any{"title": 3}, "title"},
		"not an object":  {"Leak", "object"},
	} {
		a := titledAggregate(func(Cmd[titled]) Change { return Emit("opened", c.data) })
		_, err := a.Decide(Current{}, openCase("Leak"))
		if err == nil || !strings.Contains(err.Error(), `case emitted event "opened" with data its Apply does not take`) ||
			!strings.Contains(err.Error(), c.fault) || !errors.Is(err, ErrBadPayload) {
			t.Errorf("%s: decide answered %v", name, err)
		}
	}
}

func TestDecideTakesEventDataOfAnotherTypeThatFits(t *testing.T) {
	for name, data := range map[string]any{
		"the Apply's type":         titled{Title: "Leak"},
		"a map of its fields":      map[string]any{"title": "Leak"},
		"a struct of its shape":    struct{ Title string }{"Leak"},
		"raw JSON of its fields":   json.RawMessage(`{"title":"Leak"}`),
		"fewer fields than it has": map[string]any{},
	} {
		a := titledAggregate(func(c Cmd[titled]) Change { return Emit("opened", data) })
		if _, err := a.Decide(Current{}, openCase("Leak")); err != nil {
			t.Errorf("%s: decide refused it: %v", name, err)
		}
	}
}

func TestDecideRefusesAnEventNoApplyHandles(t *testing.T) {
	a := titledAggregate(func(c Cmd[titled]) Change { return Emit("closed", c.Data) })
	_, err := a.Decide(Current{}, openCase("Leak"))
	if err == nil || !strings.Contains(err.Error(), `case emitted event "closed" that no Apply handles`) {
		t.Fatalf("decide answered %v", err)
	}
}
