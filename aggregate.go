package plait

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"sort"
	"strings"
	"time"
)

// Cmd is a command as a decide function sees it: the envelope's values, the
// decoded data, and the instance's seq and field lineage as they stand. Time
// and ids come in as values; decide reads no clock.
type Cmd[C any] struct {
	ID            string
	AggregateID   string
	User          string
	CorrelationID string
	At            time.Time
	Data          C
	// Seq is the instance's seq before this command: 0 for a new instance.
	Seq int64
	// Lineage is the source of each field of a view instance so far, so a
	// view can ignore an update older than what it shows.
	Lineage map[string]Lineage
}

// Current is an instance as the engine hands it to decide: its seq, its
// encoded state (nil when new) and its fields' lineage.
type Current struct {
	Seq     int64
	State   json.RawMessage
	Lineage map[string]Lineage
}

// Lineage says which aggregate instance, at which seq, contributed a field of
// a view aggregate.
type Lineage struct {
	Type        string `json:"type"`
	AggregateID string `json:"aggregateId"`
	Seq         int64  `json:"seq"`
}

// Supersedes reports whether a value whose source is l may replace one whose
// source is cur, so that a view handler can ignore an update older than
// what it shows (reactors' commands may arrive late or twice): yes when cur
// is empty (no value yet), when l is a later seq of the same instance, and
// when l is another instance. The last is the handler's to judge where a
// field can come from several instances in turn (an order moved to another
// customer): Supersedes orders the versions of one instance only.
func (l Lineage) Supersedes(cur Lineage) bool {
	if l.Type != cur.Type || l.AggregateID != cur.AggregateID {
		return true
	}
	return l.Seq > cur.Seq
}

// Change is one event a decide function emits, made with [Emit].
type Change struct {
	Name    string
	Data    json.RawMessage
	Lineage map[string]Lineage
	typed   typed // Data as the value Emit encoded
	err     error
}

// Emit makes a change: the event name and its data, encoded as JSON. Work
// that folds the change at once, such as a view rebuild, may hand data to
// the evolve function as it is, without decoding Data: E must come out of a
// JSON round trip unchanged, as the data of any stored event must. E should
// be the type the event's [Apply] takes; data of another type must decode
// as that one without a field it lacks, or the command is rejected as
// internal (a misspelt field would otherwise be stored and never read).
func Emit[E any](name string, data E) Change {
	raw, err := json.Marshal(data)
	return Change{Name: name, Data: raw, typed: newTyped(raw, data), err: err}
}

// From records that the given fields of a view aggregate's state were set by
// this change from src. The engine records it with the event and as the
// field's lineage in the instance's record.
func (c Change) From(src Lineage, fields ...string) Change {
	l := make(map[string]Lineage, len(c.Lineage)+len(fields))
	for k, v := range c.Lineage {
		l[k] = v
	}
	for _, f := range fields {
		l[f] = src
	}
	c.Lineage = l
	return c
}

// User is who sends a command or reads state, as the HTTP layer
// authenticated them.
type User struct {
	ID    string
	Roles []string
}

// HasRole reports whether the user has the role.
func (u User) HasRole(role string) bool {
	for _, r := range u.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Access declares who may send which command to an aggregate type and who may
// see its instances. The zero value lets every user do everything.
type Access struct {
	// Send reports whether user may send the named command. Nil allows all.
	Send func(user User, command string) bool
	// OwnerOnly restricts each instance to the user who created it (its
	// owner) and to users holding one of SeeAllRoles. The owner is the user
	// of the first command of the instance that emitted events; for a view,
	// fed by reactors, that is the user whose command caused the event the
	// reactor turned into that first command, so a view handler that does
	// not want an item to belong to whoever touches it first emits nothing
	// until the command comes from the right source.
	OwnerOnly bool
	// OwnerField, with OwnerOnly, names a top-level field of the state,
	// of text, that holds the id of the user who owns each instance, in
	// place of its first sender: after every command that changes the
	// instance, its owner is the field's value. A case assigned to an
	// agent is theirs to see and act on, and no longer its earlier
	// owner's; its decide function sets the field, to the command's
	// user when it opens the case, say. An instance whose field is empty
	// is seen by SeeAllRoles only. The sender of a command always sees
	// its outcome, though the instance be another's from then on; its
	// former owner, on the relay, the events that took it away.
	OwnerField string
	// SeeAllRoles lists roles that see every instance even when OwnerOnly
	// or RolesOnly.
	SeeAllRoles []string
	// RolesOnly restricts every instance to users holding one of
	// SeeAllRoles, its owner included: for a type that is the
	// application's own bookkeeping, such as a view that only feeds
	// others. It restricts what users see, not what they may send: give
	// Send too for a type users should not write that is no view (users
	// never send a view's commands: only reactors do).
	RolesOnly bool
}

// MaySend reports whether user may send command.
func (a Access) MaySend(user User, command string) bool {
	return a.Send == nil || a.Send(user, command)
}

// MaySee reports whether user may see an instance owned by owner. Owned
// by no one, an instance is everyone's, unless its owner is the
// OwnerField's, which no one is given yet.
func (a Access) MaySee(user User, owner string) bool {
	if !a.RolesOnly && (!a.OwnerOnly || owner == user.ID || owner == "" && a.OwnerField == "") {
		return true
	}
	return a.SeesAll(user)
}

// Owner returns the owner of an instance whose state is state, previously
// owned by owner (by the sender of its first command, for a new one): the
// OwnerField's value, "" if the field holds no text, or owner without an
// OwnerField.
func (a Access) Owner(state json.RawMessage, owner string) string {
	if a.OwnerField == "" || !a.OwnerOnly {
		return owner
	}
	var top map[string]json.RawMessage
	var v string
	if json.Unmarshal(state, &top) != nil || json.Unmarshal(top[a.OwnerField], &v) != nil {
		return ""
	}
	return v
}

// ByOwner reports whether a user who does not see every instance (see
// SeesAll) sees their own: OwnerOnly, unless RolesOnly, where such a user
// sees none.
func (a Access) ByOwner() bool { return a.OwnerOnly && !a.RolesOnly }

// SeesAll reports whether user sees every instance of the type.
func (a Access) SeesAll(user User) bool {
	if !a.OwnerOnly && !a.RolesOnly {
		return true
	}
	for _, r := range a.SeeAllRoles {
		if user.HasRole(r) {
			return true
		}
	}
	return false
}

// Definition is what the engine needs of an aggregate type. *Aggregate[S]
// implements it; the engine never sees S.
type Definition interface {
	// Type is the aggregate type's name.
	Type() string
	// Commands lists the command names, sorted.
	Commands() []string
	// CheckCommand reports whether name is a command of the type and data
	// decodes into its payload, with an *EnvelopeError when not.
	CheckCommand(name string, data json.RawMessage) error
	// Decide runs the command against the instance as it stands and returns
	// the changes; a *Rejection error rejects the command. It may panic if
	// the application's code does.
	Decide(current Current, cmd Command) ([]Change, error)
	// Evolve folds one event into the state and returns the new state.
	Evolve(state json.RawMessage, name string, data json.RawMessage) (json.RawMessage, error)
	// Settings returns the type's declared options.
	Settings() Settings
}

// Settings are the declared options of an aggregate type.
type Settings struct {
	// View marks a view aggregate: fed only by reactors, never by users.
	View bool
	// Indexes lists the state fields that lists filter or sort on; each gets
	// a secondary index in the store.
	Indexes []string
	// Searchable lists the state fields of text that lists search
	// case- and accent-insensitively; the store keeps an index of each
	// field's SearchKey.
	Searchable []string
	// Access is who may send and see.
	Access Access
	// Fields lists the top-level JSON fields of the state, sorted, so that
	// queries can refuse fields that do not exist.
	Fields []string
	// Kinds gives the kind of value of each of Fields, so that queries can
	// refuse a filter no value of the field can meet.
	Kinds map[string]Kind
	// PersonalCopies lists the state fields that hold personal values of
	// another type, copied sealed by a reactor: see [PersonalCopies].
	PersonalCopies []string
}

// Aggregate is an aggregate type whose instances hold a state of type S.
// Build it with [NewAggregate] and the options [Handle], [Apply], [Indexed], [Searchable],
// [AsView] and [WithAccess].
type Aggregate[S any] struct {
	typ      string
	deciders map[string]decider[S]
	evolvers map[string]evolver[S]
	fits     map[string]func(raw json.RawMessage, v any) error // event name → whether an emitted change's data is its Apply's
	applies  map[string]reflect.Type                           // event name → the data type its Apply takes
	settings Settings
	versions map[string]int            // event name → current version, when above 1
	schemas  map[string]*commandSchema // command name → its JSON Schema, see Schema
	personal *personal                 // the personal fields, see Personal
	errs     []error                   // mistakes found while building, see Err
}

type decider[S any] struct {
	check  func(json.RawMessage) error
	fits   func(v any) bool // whether v is the command's data type
	decide func(S, Current, Command) ([]Change, error)
}

// evolver folds one event into the state: the value Emit encoded when
// given (v, not nil), else the decoded raw data.
type evolver[S any] func(s S, raw json.RawMessage, v any) (S, error)

// Option configures an aggregate type.
type Option[S any] func(*Aggregate[S])

// NewAggregate defines an aggregate type. It panics if two options handle
// the same command or apply the same event: that is a programming error
// found at start-up.
func NewAggregate[S any](typ string, opts ...Option[S]) *Aggregate[S] {
	a := &Aggregate[S]{
		typ:      typ,
		deciders: map[string]decider[S]{},
		evolvers: map[string]evolver[S]{},
		fits:     map[string]func(json.RawMessage, any) error{},
		applies:  map[string]reflect.Type{},
	}
	for _, o := range opts {
		o(a)
	}
	a.settings.Fields, a.settings.Kinds = jsonFields(reflect.TypeFor[S]())
	a.checkOptions()
	return a
}

// jsonFields lists the JSON names of a struct type's exported fields,
// following embedded structs as encoding/json does, sorted, and the kind
// of value each holds.
func jsonFields(t reflect.Type) ([]string, map[string]Kind) {
	kinds := map[string]Kind{}
	collectFields(t, kinds)
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, kinds
}

func collectFields(t reflect.Type, kinds map[string]Kind) {
	for name, f := range jsonMembers(t) {
		_, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		kinds[name] = kindOf(f.Type, opts)
	}
}

// jsonMembers yields the fields of struct t (through pointers) that
// encoding/json decodes object members into, each with its member's name
// (its json tag's, else the field's): embedded structs' fields included,
// unexported fields and those tagged "-" left out.
func jsonMembers(t reflect.Type) iter.Seq2[string, reflect.StructField] {
	return func(yield func(string, reflect.StructField) bool) { walkMembers(t, yield) }
}

func walkMembers(t reflect.Type, yield func(string, reflect.StructField) bool) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return true
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			if !walkMembers(f.Type, yield) {
				return false
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if !yield(name, f) {
			return false
		}
	}
	return true
}

// Kind is the kind of JSON value a state field holds, which a list's
// filters on it must fit.
type Kind string

// The kinds of state fields.
const (
	KindString Kind = "string" // text, times included
	KindNumber Kind = "number"
	KindBool   Kind = "bool"
	KindList   Kind = "list"   // a JSON array: a slice or an array
	KindObject Kind = "object" // a JSON object: a struct or a map
	KindOther  Kind = "other"  // its own encoding, or any value
)

// Comparable reports whether a list can filter or sort on a field of kind
// k: text, numbers and true or false compare; lists and objects do not.
func (k Kind) Comparable() bool { return k != KindList && k != KindObject }

// Noun names the values of the kind with their article, for messages:
// "a text", "a list", "an object".
func (k Kind) Noun() string {
	switch k {
	case KindList:
		return "a list"
	case KindObject:
		return "an object"
	}
	return "a " + string(k)
}

func kindOf(t reflect.Type, tagOpts string) Kind {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if strings.Contains(","+tagOpts+",", ",string,") {
		return KindString // a number or bool encoded as a JSON string
	}
	if t.Implements(reflect.TypeFor[json.Marshaler]()) || reflect.PointerTo(t).Implements(reflect.TypeFor[json.Marshaler]()) ||
		t.Implements(reflect.TypeFor[encoding.TextMarshaler]()) {
		if t == reflect.TypeFor[time.Time]() {
			return KindString
		}
		return KindOther // its own encoding: anything
	}
	switch t.Kind() {
	case reflect.String:
		return KindString
	case reflect.Bool:
		return KindBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return KindNumber
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return KindString // bytes are encoded as base64 text
		}
		return KindList
	case reflect.Array:
		return KindList
	case reflect.Struct, reflect.Map:
		return KindObject
	}
	return KindOther
}

// Handle declares the command name with data of type C and its pure decide
// function.
func Handle[S, C any](name string, decide func(state S, cmd Cmd[C]) ([]Change, error)) Option[S] {
	return func(a *Aggregate[S]) {
		if _, dup := a.deciders[name]; dup {
			panic(fmt.Sprintf("plait: %s: command %q handled twice", a.typ, name))
		}
		a.deciders[name] = decider[S]{
			check: func(raw json.RawMessage) error {
				_, err := decodeStrict[C](raw)
				return err
			},
			fits: func(v any) bool {
				_, ok := v.(C)
				return ok
			},
			decide: func(s S, cur Current, c Command) ([]Change, error) {
				data, ok := typedAs[C](c.typed, c.Data)
				if !ok {
					var err error
					if data, err = decodeStrict[C](c.Data); err != nil {
						return nil, dataError(err)
					}
				}
				return decide(s, Cmd[C]{
					ID: c.ID, AggregateID: c.AggregateID, User: c.User,
					CorrelationID: c.CorrelationID, At: c.At, Data: data,
					Seq: cur.Seq, Lineage: cur.Lineage,
				})
			},
		}
	}
}

// Apply declares the event name with data of type E and its pure evolve
// function.
func Apply[S, E any](name string, evolve func(state S, data E) S) Option[S] {
	return func(a *Aggregate[S]) {
		if _, dup := a.evolvers[name]; dup {
			panic(fmt.Sprintf("plait: %s: event %q applied twice", a.typ, name))
		}
		a.applies[name] = reflect.TypeFor[E]()
		a.evolvers[name] = func(s S, raw json.RawMessage, v any) (S, error) {
			if e, ok := v.(E); ok {
				return evolve(s, e), nil
			}
			var e E
			if err := decodeJSON(raw, &e); err != nil {
				return s, fmt.Errorf("decode event %s.%s: %w", a.typ, name, err)
			}
			return evolve(s, e), nil
		}
		// Stored events are decoded leniently, so that a field an
		// event's type no longer has does not stop a replay; the data a
		// decide function emits now must be an E, or decode as one
		// without a field E lacks, or a misspelt field would be stored
		// and silently ignored.
		a.fits[name] = func(raw json.RawMessage, v any) error {
			if _, ok := v.(E); ok {
				return nil
			}
			_, err := decodeStrict[E](raw)
			return err
		}
	}
}

// Indexed declares state fields that lists filter or sort on often: the
// store keeps an index of each, so that such a list stays fast however
// many instances the type has. A list can filter and sort on any field of
// a plain value without it, by reading every instance of the type.
func Indexed[S any](fields ...string) Option[S] {
	return func(a *Aggregate[S]) { a.settings.Indexes = append(a.settings.Indexes, fields...) }
}

// AsView marks a view aggregate, fed only by reactors.
func AsView[S any]() Option[S] {
	return func(a *Aggregate[S]) { a.settings.View = true }
}

// WithAccess declares who may send and see.
func WithAccess[S any](access Access) Option[S] {
	return func(a *Aggregate[S]) { a.settings.Access = access }
}

// Type is the aggregate type's name.
func (a *Aggregate[S]) Type() string { return a.typ }

// Settings returns the declared options.
func (a *Aggregate[S]) Settings() Settings { return a.settings }

// Commands lists the command names, sorted.
func (a *Aggregate[S]) Commands() []string {
	names := make([]string, 0, len(a.deciders))
	for n := range a.deciders {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Events lists the event names, sorted.
func (a *Aggregate[S]) Events() []string {
	names := make([]string, 0, len(a.evolvers))
	for n := range a.evolvers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CheckCommand reports whether name is a command of the type and data
// decodes; data that violates the command's JSON Schema (see [Schema]), or
// has a value its Go type cannot hold, gives an *EnvelopeError wrapping a
// *SchemaError.
func (a *Aggregate[S]) CheckCommand(name string, data json.RawMessage) error {
	d, ok := a.deciders[name]
	if !ok {
		return &EnvelopeError{Field: "name", Detail: fmt.Sprintf("%s has no command %q", a.typ, name), Err: ErrUnknownCommand}
	}
	if err := a.validateSchema(name, data); err != nil {
		return dataError(err)
	}
	if err := d.check(data); err != nil {
		return dataError(err)
	}
	return nil
}

// dataError is the *EnvelopeError for command data that does not decode:
// it wraps a *SchemaError, whose annotations name the values at fault, or
// else ErrBadPayload.
func dataError(err error) *EnvelopeError {
	var se *SchemaError
	if errors.As(err, &se) {
		return &EnvelopeError{Field: "data", Detail: se.Detail(), Err: se}
	}
	return &EnvelopeError{Field: "data", Detail: err.Error(), Err: ErrBadPayload}
}

// passesTyped reports whether cmd passes CheckCommand because its data is
// the Go value its handler takes and no JSON Schema applies to it; false
// means CheckCommand must tell.
func (a *Aggregate[S]) passesTyped(cmd Command) bool {
	d, found := a.deciders[cmd.Name]
	if !found {
		return false
	}
	if _, hasSchema := a.schemas[cmd.Name]; hasSchema {
		return false
	}
	v, ok := cmd.typed.of(cmd.Data)
	return ok && d.fits(v)
}

// CheckOf is def.CheckCommand(cmd.Name, cmd.Data). For a command a reactor
// made in this process with [Send], whose data is the very value the
// handler takes and has no JSON Schema to meet, it skips decoding the data
// again.
func CheckOf(def Definition, cmd Command) error {
	if t, ok := def.(interface{ passesTyped(Command) bool }); ok && t.passesTyped(cmd) {
		return nil
	}
	return def.CheckCommand(cmd.Name, cmd.Data)
}

// typedAs returns the value t holds for data if it is a T.
func typedAs[T any](t typed, data json.RawMessage) (T, bool) {
	v, ok := t.of(data)
	if !ok {
		var zero T
		return zero, false
	}
	d, ok := v.(T)
	return d, ok
}

// Decide runs the command against the instance and returns the changes.
// Every change's event name must be applied by the type.
func (a *Aggregate[S]) Decide(current Current, cmd Command) ([]Change, error) {
	s, err := a.decodeState(current.State)
	if err != nil {
		return nil, err
	}
	return a.decideState(s, current, cmd)
}

// decideState is Decide on a decoded state.
func (a *Aggregate[S]) decideState(s S, current Current, cmd Command) ([]Change, error) {
	d, ok := a.deciders[cmd.Name]
	if !ok {
		return nil, &EnvelopeError{Field: "name", Detail: cmd.Name, Err: ErrUnknownCommand}
	}
	changes, err := d.decide(s, current, cmd)
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		if c.err != nil {
			return nil, fmt.Errorf("encode event %s.%s: %w", a.typ, c.Name, c.err)
		}
		fits, ok := a.fits[c.Name]
		if !ok {
			return nil, fmt.Errorf("%s emitted event %q that no Apply handles", a.typ, c.Name)
		}
		v, _ := c.typed.of(c.Data)
		if err := fits(c.Data, v); err != nil {
			// A *SchemaError's message is a command's; what it found
			// at fault, with its path, is in its annotations.
			var se *SchemaError
			if errors.As(err, &se) {
				return nil, &eventDataError{fmt.Sprintf("%s emitted event %q with data its Apply does not take: %s", a.typ, c.Name, se.Detail()), err}
			}
			return nil, fmt.Errorf("%s emitted event %q with data its Apply does not take: %w", a.typ, c.Name, err)
		}
	}
	return changes, nil
}

// eventDataError is event data a decide function emitted that its Apply
// does not take: msg says what is at fault, and err is the decoder's.
type eventDataError struct {
	msg string
	err error
}

func (e *eventDataError) Error() string { return e.msg }
func (e *eventDataError) Unwrap() error { return e.err }

// Evolve folds one encoded event into the encoded state.
func (a *Aggregate[S]) Evolve(state json.RawMessage, name string, data json.RawMessage) (json.RawMessage, error) {
	ev, ok := a.evolvers[name]
	if !ok {
		return nil, fmt.Errorf("%s has no event %q", a.typ, name)
	}
	s, err := a.decodeState(state)
	if err != nil {
		return nil, err
	}
	s, err = ev(s, data, nil)
	if err != nil {
		return nil, err
	}
	return json.Marshal(s)
}

func (a *Aggregate[S]) decodeState(state json.RawMessage) (S, error) {
	var s S
	if len(state) == 0 {
		return s, nil
	}
	if err := decodeJSON(state, &s); err != nil {
		return s, fmt.Errorf("decode %s state: %w", a.typ, err)
	}
	return s, nil
}

// decodeStrict decodes one JSON value into T, refusing unknown fields and
// trailing data. An empty payload decodes as {}.
func decodeStrict[T any](raw json.RawMessage) (T, error) {
	var v T
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	// Only white space may follow the value: a stray ] or } would let data
	// that is not JSON through, which no store can hold.
	err := decodeStrictInto(raw, &v)
	return v, err
}

// eventData returns the data type the Apply of event name takes.
func (a *Aggregate[S]) eventData(name string) (reflect.Type, bool) {
	t, ok := a.applies[name]
	return t, ok
}
