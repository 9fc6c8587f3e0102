package plait

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// App is an application: a deployable unit owning a few aggregate types and
// the reactors that feed its views. It is a plain value; nothing is
// registered globally.
type App struct {
	// Name identifies the application; on Kafka it is the consumer group.
	Name string
	// Aggregates are the aggregate types, views included.
	Aggregates []Definition
	// Reactors turn events into commands.
	Reactors []*Reactor
	// Upcasters turn events recorded in an older shape of their data into
	// the current one, when they are read: see [Version] and [Upcast].
	Upcasters []Upcaster
}

var namePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// Validate reports the first thing wrong with the application's definition:
// a missing or malformed name, a type defined twice, a reactor named twice,
// a mistake in a type's options, an indexed field the state does not have,
// a reactor subscribed to an event its type (one of the application's)
// does not have, an upcaster chain with a hole or two upcasters for the
// same step. A reactor may subscribe to a type the application does not
// define: another application's, whose events it consumes.
func (a App) Validate() error {
	if !namePattern.MatchString(a.Name) {
		return fmt.Errorf("plait: application name %q: want a letter then letters, digits or _", a.Name)
	}
	types := map[string]bool{}
	indexes := map[string]string{} // the stores name an index TYPE_FIELD
	for _, d := range a.Aggregates {
		if !namePattern.MatchString(d.Type()) {
			return fmt.Errorf("plait: aggregate type %q: want a letter then letters, digits or _", d.Type())
		}
		if types[d.Type()] {
			return fmt.Errorf("plait: aggregate type %q defined twice", d.Type())
		}
		types[d.Type()] = true
		if c, ok := d.(interface{ Err() error }); ok {
			if err := c.Err(); err != nil {
				return err
			}
		}
		for _, f := range d.Settings().Indexes {
			if !namePattern.MatchString(f) {
				return fmt.Errorf("plait: %s: indexed field %q is not a plain name", d.Type(), f)
			}
			// A state that is no struct (a map) has no fields to check.
			if fields := d.Settings().Fields; len(fields) > 0 {
				if _, found := slices.BinarySearch(fields, f); !found {
					return fmt.Errorf("plait: %s: indexed field %q is not a field of its state (%s)", d.Type(), f, strings.Join(fields, ", "))
				}
				if k := d.Settings().Kinds[f]; !k.Comparable() {
					return fmt.Errorf("plait: %s: indexed field %q holds %s, which lists can neither filter nor sort on", d.Type(), f, k.Noun())
				}
			}
			name, field := d.Type()+"_"+f, d.Type()+"."+f
			if other, ok := indexes[name]; ok && other != field {
				return fmt.Errorf("plait: the indexes of %s and %s would have one name, %s: rename a type or a field", other, field, name)
			}
			indexes[name] = field
		}
		if err := checkSearchable(d); err != nil {
			return err
		}
		if err := checkOwnerField(d); err != nil {
			return err
		}
	}
	reactors := map[string]bool{}
	for _, r := range a.Reactors {
		if !namePattern.MatchString(r.Name()) {
			return fmt.Errorf("plait: reactor name %q: want a letter then letters, digits or _", r.Name())
		}
		if reactors[r.Name()] {
			return fmt.Errorf("plait: reactor %q defined twice", r.Name())
		}
		reactors[r.Name()] = true
		for _, key := range r.Subscriptions() {
			typ, name, _ := strings.Cut(key, ".")
			d, ok := a.Definition(typ)
			if !ok {
				continue // another application's type
			}
			if v, ok := d.(interface{ Events() []string }); ok && !slices.Contains(v.Events(), name) {
				return fmt.Errorf("plait: reactor %s: subscribed to %s, but %s has no event %q (its events: %s)",
					r.Name(), key, typ, name, strings.Join(v.Events(), ", "))
			}
		}
	}
	return a.validateUpcasters()
}

// Definition returns the aggregate type named typ.
func (a App) Definition(typ string) (Definition, bool) {
	for _, d := range a.Aggregates {
		if d.Type() == typ {
			return d, true
		}
	}
	return nil, false
}

// Warnings lists what looks wrong in the application without being sure
// to be: a reactor that decodes an event's data into a struct with fields
// the data type of the event's Apply does not have, which it would always
// see empty (a misnamed field, or the data type of another event). The
// engine logs them when it starts. Types that decode themselves are not
// compared.
func (a App) Warnings() []string {
	var warnings []string
	for _, r := range a.Reactors {
		for _, key := range r.Subscriptions() {
			typ, name, _ := strings.Cut(key, ".")
			def, ok := a.Definition(typ)
			if !ok {
				continue
			}
			applied, ok := def.(interface {
				eventData(string) (reflect.Type, bool)
			})
			if !ok {
				continue
			}
			have, ok := applied.eventData(name)
			if !ok {
				continue
			}
			if missing := missingMembers(r.data[key], have); len(missing) > 0 {
				warnings = append(warnings, fmt.Sprintf("reactor %s: decodes %s into %s, whose fields %s the data of %s (%s) has not: they would always be empty",
					r.Name(), key, r.data[key], strings.Join(missing, ", "), key, have))
			}
		}
	}
	return warnings
}

// missingMembers lists the JSON members of struct want that struct have
// has no field for (matched as encoding/json matches them). It lists none
// unless both are structs that do not decode themselves.
func missingMembers(want, have reflect.Type) []string {
	if !plainStruct(want) || !plainStruct(have) {
		return nil
	}
	var missing []string
	for name := range jsonMembers(want) {
		if _, ok := structMember(have, name); !ok {
			missing = append(missing, name)
		}
	}
	return missing
}

// plainStruct reports whether t (through pointers) is a struct that
// encoding/json decodes field by field.
func plainStruct(t reflect.Type) bool {
	if t == nil {
		return false
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && !decodesItself(t)
}

// SealedFields lists the fields of d whose values are stored sealed: its
// own personal fields (PersonalData) and the personal values of other
// types it copies (Settings.PersonalCopies).
func SealedFields(d Definition) []string {
	sealed := d.Settings().PersonalCopies
	if pd, ok := d.(PersonalData); ok {
		own, _ := pd.PersonalFields()
		sealed = append(slices.Clip(sealed), own...)
	}
	return sealed
}

// checkOwnerField checks the OwnerField of d's access: with OwnerOnly, a
// field of its state that holds text, in the clear.
func checkOwnerField(d Definition) error {
	a := d.Settings().Access
	switch {
	case a.OwnerField == "":
		return nil
	case !a.OwnerOnly || a.RolesOnly:
		return fmt.Errorf("plait: %s: owner field %q without OwnerOnly (or with RolesOnly) decides nothing", d.Type(), a.OwnerField)
	}
	return checkTextField(d, "owner field", a.OwnerField, "an owner is compared in the clear", "an owner is a user's id, text")
}

// checkSearchable checks the fields d declares Searchable: each a field of
// its state that holds text, in the clear, named once.
func checkSearchable(d Definition) error {
	fields := d.Settings().Searchable
	for i, f := range fields {
		if slices.Contains(fields[:i], f) {
			return fmt.Errorf("plait: %s: searchable field %q named twice", d.Type(), f)
		}
		// A sealed field's store holds its ciphertext, whose keys an
		// index would keep to no use.
		if err := checkTextField(d, "searchable field", f,
			"which no index can search: a list searches it by opening each item, with no declaration", "a search is of text"); err != nil {
			return err
		}
	}
	return nil
}

// checkTextField checks that f, the what of d, is a plain name, not
// sealed (else the error says why not), and, when d's state has fields, a
// field of it that holds text (else the error says why so).
func checkTextField(d Definition, what, f, whyNotSealed, whyText string) error {
	switch {
	case !namePattern.MatchString(f):
		return fmt.Errorf("plait: %s: %s %q is not a plain name", d.Type(), what, f)
	case slices.Contains(SealedFields(d), f):
		return fmt.Errorf("plait: %s: %s %q is personal data, stored sealed, %s", d.Type(), what, f, whyNotSealed)
	}
	if fields := d.Settings().Fields; len(fields) > 0 {
		if _, found := slices.BinarySearch(fields, f); !found {
			return fmt.Errorf("plait: %s: %s %q is not a field of its state (%s)", d.Type(), what, f, strings.Join(fields, ", "))
		}
		if k := d.Settings().Kinds[f]; k != KindString && k != KindOther {
			return fmt.Errorf("plait: %s: %s %q holds %s; %s", d.Type(), what, f, k.Noun(), whyText)
		}
	}
	return nil
}
