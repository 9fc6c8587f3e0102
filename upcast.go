package plait

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
)

// Version declares that event name's data is at version n of its shape
// (the default is 1). The event's [Apply] keeps declaring the current shape;
// an [Upcaster] for every older version, registered on the [App], turns
// events recorded in an older shape into it when they are read.
//
// Bump the version when a change to the data's shape would make an old
// event decode wrongly (a field renamed, re-typed or given a new meaning);
// a field merely added, whose zero value is right for old events, needs
// none.
func Version[S any](event string, n int) Option[S] {
	return func(a *Aggregate[S]) {
		if n < 1 {
			a.errs = append(a.errs, fmt.Errorf("plait: %s: event %q: version %d: want 1 or more", a.typ, event, n))
			return
		}
		if a.versions == nil {
			a.versions = map[string]int{}
		}
		if _, dup := a.versions[event]; dup {
			a.errs = append(a.errs, fmt.Errorf("plait: %s: event %q: version declared twice", a.typ, event))
		}
		a.versions[event] = n
	}
}

// Versioned is a [Definition] whose events have versions. *Aggregate[S]
// implements it; a Definition that does not has every event at version 1.
type Versioned interface {
	// EventVersion returns the current version of event name's data, 1
	// unless declared otherwise.
	EventVersion(name string) int
}

// EventVersion returns the current version of event name's data: the one
// declared with [Version], or 1.
func (a *Aggregate[S]) EventVersion(name string) int {
	if n, ok := a.versions[name]; ok {
		return n
	}
	return 1
}

// EventVersionOf returns the current version of event name of def: 1 unless
// def is [Versioned] and says otherwise.
func EventVersionOf(def Definition, name string) int {
	if v, ok := def.(Versioned); ok {
		return v.EventVersion(name)
	}
	return 1
}

// Err reports the mistakes in the type's options found when it was built,
// such as a version declared for an event no [Apply] declares or a schema
// that does not compile; [App.Validate] reports them too.
func (a *Aggregate[S]) Err() error { return errors.Join(a.errs...) }

// checkOptions records what is wrong with the options as a whole.
func (a *Aggregate[S]) checkOptions() {
	names := make([]string, 0, len(a.versions))
	for n := range a.versions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, ok := a.evolvers[n]; !ok {
			a.errs = append(a.errs, fmt.Errorf("plait: %s: version declared for event %q, which no Apply declares", a.typ, n))
		}
	}
	for _, f := range a.settings.PersonalCopies {
		if _, ok := slices.BinarySearch(a.settings.Fields, f); !ok {
			a.errs = append(a.errs, fmt.Errorf("plait: %s: personal copy %q is not a field of the state", a.typ, f))
		}
	}
	a.checkSchemas()
}

// Upcaster turns the data of one event from version From of its shape into
// version From+1. It is pure: no clock, no I/O, the same output for the same
// input. Upcasters are chained: an event recorded at version 1 of a name now
// at version 3 goes through the upcasters from 1 and from 2. Make one with
// [Upcast] or [UpcastAs].
type Upcaster struct {
	Type  string // the aggregate type
	Event string // the event name
	From  int    // the version it reads; it writes From+1
	Func  func(data json.RawMessage) (json.RawMessage, error)
}

// Upcast makes an upcaster of event name of aggregate type typ from
// version from to from+1, working on the encoded data.
func Upcast(typ, event string, from int, fn func(old json.RawMessage) (json.RawMessage, error)) Upcaster {
	return Upcaster{Type: typ, Event: event, From: from, Func: fn}
}

// UpcastAs makes an upcaster of event name of aggregate type typ from
// version from to from+1 out of a typed function: the old data is decoded
// into Old, and what fn returns is encoded as the new data.
func UpcastAs[Old, New any](typ, event string, from int, fn func(old Old) New) Upcaster {
	return Upcast(typ, event, from, func(raw json.RawMessage) (json.RawMessage, error) {
		var old Old
		if err := decodeJSON(raw, &old); err != nil {
			return nil, fmt.Errorf("decode %s.%s version %d: %w", typ, event, from, err)
		}
		return json.Marshal(fn(old))
	})
}

// validateUpcasters reports the first hole or ambiguity in the upcaster
// chains: every event at version n > 1 needs exactly one upcaster from each
// version 1 to n-1, and every upcaster must lead to a version that exists.
func (a App) validateUpcasters() error {
	type key struct {
		typ, event string
		from       int
	}
	have := map[key]bool{}
	for _, u := range a.Upcasters {
		def, ok := a.Definition(u.Type)
		if !ok {
			return fmt.Errorf("plait: upcaster of %s.%s: no aggregate type %q", u.Type, u.Event, u.Type)
		}
		if u.Func == nil {
			return fmt.Errorf("plait: upcaster of %s.%s from version %d has no function", u.Type, u.Event, u.From)
		}
		current := EventVersionOf(def, u.Event)
		if u.From < 1 || u.From >= current {
			return fmt.Errorf("plait: upcaster of %s.%s from version %d: the event is at version %d, so upcasters go from 1 to %d",
				u.Type, u.Event, u.From, current, current-1)
		}
		k := key{u.Type, u.Event, u.From}
		if have[k] {
			return fmt.Errorf("plait: upcaster of %s.%s from version %d registered twice", u.Type, u.Event, u.From)
		}
		have[k] = true
	}
	for _, d := range a.Aggregates {
		v, ok := d.(interface{ Events() []string })
		if !ok {
			continue
		}
		for _, ev := range v.Events() {
			for from := 1; from < EventVersionOf(d, ev); from++ {
				if !have[key{d.Type(), ev, from}] {
					return fmt.Errorf("plait: %s.%s is at version %d but has no upcaster from version %d",
						d.Type(), ev, EventVersionOf(d, ev), from)
				}
			}
		}
	}
	return nil
}
