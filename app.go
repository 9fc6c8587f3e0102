package plait

import (
	"fmt"
	"regexp"
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
// a mistake in a type's options, an upcaster chain with a hole or two
// upcasters for the same step.
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
			name, field := d.Type()+"_"+f, d.Type()+"."+f
			if other, ok := indexes[name]; ok && other != field {
				return fmt.Errorf("plait: the indexes of %s and %s would have one name, %s: rename a type or a field", other, field, name)
			}
			indexes[name] = field
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
