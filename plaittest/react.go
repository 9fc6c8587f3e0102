package plaittest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/plaithq/plait"
)

// Happened is event name of instance id of aggregate type typ, its seq-th,
// with data encoded as JSON, as a reactor receives it: sent by
// [DefaultUser] at [FixedTime] in correlation [DefaultCommand]. Its fields
// can be set before it is given to [React].
func Happened(typ, id string, seq int64, name string, data any) plait.Event {
	raw, err := json.Marshal(data)
	if err != nil {
		raw = nil // React reports it: the reactor cannot decode nothing
	}
	return plait.Event{
		ID: fmt.Sprintf("%s-%s-%d", typ, id, seq), Type: typ, AggregateID: id, Seq: seq, Name: name, Data: raw,
		CorrelationID: DefaultCommand, User: DefaultUser, At: FixedTime,
	}
}

// Sent is a command a reactor is expected to send: where it goes, and its
// data, compared as a JSON value.
type Sent struct {
	Type        string
	AggregateID string
	Name        string
	Data        any
}

// Reaction is what a reactor made of one event. Its Then methods report a
// mismatch with t.Errorf and return the reaction, so checks chain.
type Reaction struct {
	reactor string
	ev      plait.Event
	cmds    []plait.Command
	err     error
}

// React runs reactor r on ev, as the engine would: an event it does not
// subscribe to sends nothing. Given the definitions of the types the
// reactor sends to (an App's Aggregates), it also checks each command as
// the engine does before it sends one, which skips a command of another
// type, or whose data does not decode, with no more than a log line: such
// a command is an error of the reaction.
func React(r *plait.Reactor, ev plait.Event, defs ...plait.Definition) *Reaction {
	x := &Reaction{reactor: r.Name(), ev: ev}
	if !r.Subscribes(ev.Type, ev.Name) {
		return x
	}
	x.cmds, x.err = r.React(ev)
	if x.err != nil || len(defs) == 0 {
		return x
	}
	for i, c := range x.cmds {
		k := slices.IndexFunc(defs, func(d plait.Definition) bool { return d.Type() == c.Type })
		if k < 0 {
			x.err = fmt.Errorf("plaittest: command %d is for type %q, none of the definitions given", i+1, c.Type)
			return x
		}
		if err := plait.CheckOf(defs[k], c); err != nil {
			x.err = fmt.Errorf("plaittest: command %d, %s.%s: %w", i+1, c.Type, c.Name, err)
			return x
		}
	}
	return x
}

// Commands returns the commands the reactor sent.
func (x *Reaction) Commands() []plait.Command { return x.cmds }

// Err returns the reactor's error: the event's data did not decode, or,
// checked against definitions, a command the engine would not send.
func (x *Reaction) Err() error { return x.err }

// ThenCommands checks that the reactor sent exactly the want commands, in
// order, each caused by the event (CausationID its id, CorrelationID its
// correlation) under an id of its own. With no want it checks that nothing
// was sent.
func (x *Reaction) ThenCommands(t testing.TB, want ...Sent) *Reaction {
	t.Helper()
	if x.err != nil {
		t.Errorf("%s: %v", x.label(), x.err)
		return x
	}
	same := len(x.cmds) == len(want)
	for i := 0; same && i < len(want); i++ {
		g, w := x.cmds[i], want[i]
		raw, err := json.Marshal(w.Data)
		if err != nil {
			t.Errorf("plaittest: encode the data of wanted command %d: %v", i+1, err)
			return x
		}
		same = g.Type == w.Type && g.AggregateID == w.AggregateID && g.Name == w.Name && sameJSON(g.Data, raw)
	}
	if !same {
		t.Errorf("%s: commands differ\n got: %s\nwant: %s", x.label(), describeCommands(x.cmds), describeSent(want))
	}
	ids := map[string]bool{}
	for i, c := range x.cmds {
		if c.CausationID != x.ev.ID || c.CorrelationID != x.ev.CorrelationID || c.ID == "" || ids[c.ID] {
			t.Errorf("%s: command %d has id %q, causation %q and correlation %q: want an id of its own, caused by %q in %q",
				x.label(), i+1, c.ID, c.CausationID, c.CorrelationID, x.ev.ID, x.ev.CorrelationID)
		}
		ids[c.ID] = true
	}
	return x
}

// ThenNoCommands checks that the reactor sent nothing.
func (x *Reaction) ThenNoCommands(t testing.TB) *Reaction {
	t.Helper()
	return x.ThenCommands(t)
}

func (x *Reaction) label() string {
	return fmt.Sprintf("%s on %s.%s", x.reactor, x.ev.Type, x.ev.Name)
}

func describeCommands(cs []plait.Command) string {
	if len(cs) == 0 {
		return "(none)"
	}
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s/%s %s %s", c.Type, c.AggregateID, c.Name, c.Data)
	}
	return strings.Join(parts, ", ")
}

func describeSent(ss []Sent) string {
	if len(ss) == 0 {
		return "(none)"
	}
	parts := make([]string, len(ss))
	for i, s := range ss {
		raw, _ := json.Marshal(s.Data)
		parts[i] = fmt.Sprintf("%s/%s %s %s", s.Type, s.AggregateID, s.Name, raw)
	}
	return strings.Join(parts, ", ")
}
