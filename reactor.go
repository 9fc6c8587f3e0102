package plait

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Evt is an event as a reactor sees it: the envelope's values and the
// decoded data.
type Evt[E any] struct {
	ID            string
	Type          string
	AggregateID   string
	Seq           int64
	CorrelationID string
	User          string
	At            time.Time
	Data          E
}

// Source is the lineage of the event: the instance and seq it came from.
func (e Evt[E]) Source() Lineage {
	return Lineage{Type: e.Type, AggregateID: e.AggregateID, Seq: e.Seq}
}

// Dispatch is a command a reactor sends, made with [Send].
type Dispatch struct {
	Type        string
	AggregateID string
	Name        string
	Data        json.RawMessage
	typed       typed // Data as the value Send encoded
	err         error
}

// Send makes a dispatch: a command for one aggregate instance. The engine
// may hand data to the command's handler as it is, without decoding Data,
// when the handler takes a C: C must come out of a JSON round trip
// unchanged, as the data of any stored command must.
func Send[C any](typ, aggregateID, name string, data C) Dispatch {
	raw, err := json.Marshal(data)
	return Dispatch{Type: typ, AggregateID: aggregateID, Name: name, Data: raw, typed: newTyped(raw, data), err: err}
}

// Err reports whether the dispatch's data failed to encode.
func (d Dispatch) Err() error { return d.err }

// Reactor turns events into commands. It is pure: it sees one event and
// returns the commands to send. The engine runs it from a durable checkpoint
// and derives each command's id from the event id, so a redelivered event
// sends nothing twice.
type Reactor struct {
	name     string
	handlers map[string]func(Event) ([]Dispatch, error) // key: type + "." + event name
	data     map[string]reflect.Type                    // key → the type its handler decodes the event's data into
}

// ReactorOption configures a reactor.
type ReactorOption func(*Reactor)

// NewReactor defines a reactor. The name identifies its checkpoint, so it
// must stay the same across releases. It panics if two options subscribe
// to the same event: a mistake in the program, not in its input. Other
// mistakes of wiring (an event its type does not have) are App.Validate's.
func NewReactor(name string, opts ...ReactorOption) *Reactor {
	r := &Reactor{name: name, handlers: map[string]func(Event) ([]Dispatch, error){}, data: map[string]reflect.Type{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// On subscribes the reactor to event name of aggregate type typ, whose data
// decodes into E. NewReactor panics when one event is subscribed to twice.
func On[E any](typ, name string, react func(e Evt[E]) []Dispatch) ReactorOption {
	return func(r *Reactor) {
		key := typ + "." + name
		if _, dup := r.handlers[key]; dup {
			panic(fmt.Sprintf("plait: reactor %s: %s subscribed twice", r.name, key))
		}
		r.data[key] = reflect.TypeFor[E]()
		r.handlers[key] = func(ev Event) ([]Dispatch, error) {
			var data E
			if err := decodeJSON(ev.Data, &data); err != nil {
				return nil, fmt.Errorf("reactor %s: decode %s: %w", r.name, key, err)
			}
			return react(Evt[E]{
				ID: ev.ID, Type: ev.Type, AggregateID: ev.AggregateID, Seq: ev.Seq,
				CorrelationID: ev.CorrelationID, User: ev.User, At: ev.At, Data: data,
			}), nil
		}
	}
}

// Name is the reactor's name.
func (r *Reactor) Name() string { return r.name }

// Subscriptions lists the "type.event" keys the reactor consumes, sorted.
func (r *Reactor) Subscriptions() []string {
	keys := make([]string, 0, len(r.handlers))
	for k := range r.handlers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Types lists the aggregate types whose events the reactor consumes,
// sorted, each once.
func (r *Reactor) Types() []string {
	var types []string
	for _, key := range r.Subscriptions() {
		if typ, _, _ := strings.Cut(key, "."); !slices.Contains(types, typ) {
			types = append(types, typ)
		}
	}
	return types
}

// Subscribes reports whether the reactor consumes event name of type typ.
func (r *Reactor) Subscribes(typ, name string) bool {
	_, ok := r.handlers[typ+"."+name]
	return ok
}

// React runs the reactor on one event and returns the commands to send, with
// their ids derived from the event id and their causation and correlation set.
// An event the reactor does not subscribe to yields nothing.
func (r *Reactor) React(ev Event) ([]Command, error) {
	h, ok := r.handlers[ev.Type+"."+ev.Name]
	if !ok {
		return nil, nil
	}
	ds, err := h(ev)
	if err != nil {
		return nil, err
	}
	cmds := make([]Command, len(ds))
	for i, d := range ds {
		if d.err != nil {
			return nil, fmt.Errorf("reactor %s: encode %s.%s: %w", r.name, d.Type, d.Name, d.err)
		}
		cmds[i] = Command{
			ID:            ReactionID(r.name, ev.ID, i),
			Type:          d.Type,
			AggregateID:   d.AggregateID,
			Name:          d.Name,
			Data:          d.Data,
			typed:         d.typed,
			CorrelationID: ev.CorrelationID,
			CausationID:   ev.ID,
			User:          ev.User,
			At:            ev.At,
		}
	}
	return cmds, nil
}

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// ReactionID is the id of the index-th command reactor sends for event
// eventID: the same inputs always give the same id, of bounded length.
func ReactionID(reactor, eventID string, index int) string {
	h := sha256.Sum256([]byte(reactor + "\x00" + eventID + "\x00" + strconv.Itoa(index)))
	return "r" + idEncoding.EncodeToString(h[:reactionIDBytes])
}

// reactionIDBytes is how many bytes of the hash a reaction id encodes.
const reactionIDBytes = 20

// IsReactionID reports whether id has the shape of a ReactionID. Such ids
// are reserved for the commands reactors send: a client that sent one
// first could take the place of a reactor's command, whose dedup would
// then answer it with the client's outcome and never run it.
func IsReactionID(id string) bool {
	if len(id) != 1+idEncoding.EncodedLen(reactionIDBytes) || id[0] != 'r' {
		return false
	}
	for _, c := range id[1:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'v') {
			return false
		}
	}
	return true
}
