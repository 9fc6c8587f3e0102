package plait

import (
	"fmt"
	"sort"
)

// Personal declares fields of the type as personal data of a data subject
// (a person who may ask to be forgotten): the top-level fields of the
// state, of the commands' data and of the events' data named in fields.
// subject names the data subject of an instance from its id; [SubjectIsID]
// says the instance is the person (a customer, say).
//
// The engine stores every personal value sealed — encrypted with AES-GCM
// under a key of its subject — in the log, in the commands, in the
// materialized state and in every view a reactor copies it into: reactors
// see the sealed value and copy it as it is, so a view holds it under the
// same key without declaring anything. decide and evolve of the type see
// the plain values; the engine's public reads (Load, List, Events,
// Outcome, the feed the relay serves) open them. Once the subject is
// forgotten (engine.Engine.Forget, plait forget SUBJECT) the key is
// destroyed and every copy reads as erased: "[erased]" for a string, null
// for any other value.
//
// A sealed value cannot be sorted on by a list query (eq and prefix
// filters compare its opened values, reading the list without an index),
// and a reactor can copy it but not read it. A view that copies one
// declares the field with [PersonalCopies], so that its lists treat it so
// too.
func Personal[S any](subject func(aggregateID string) string, fields ...string) Option[S] {
	return func(a *Aggregate[S]) {
		if subject == nil {
			a.errs = append(a.errs, fmt.Errorf("plait: %s: personal fields without a subject function", a.typ))
			return
		}
		if a.personal == nil {
			a.personal = &personal{subject: subject}
		}
		a.personal.fields = append(a.personal.fields, fields...)
		sort.Strings(a.personal.fields)
	}
}

// PersonalCopies declares top-level fields of a view's state that hold
// personal values of another type, copied by a reactor: a customer's name
// in an order list, say. Such a copy is sealed under its subject's key and
// erased with it without this declaration; what the declaration adds is
// that list queries refuse to sort on these fields, and filter on their
// opened values, as they do for the type's own personal fields, instead
// of comparing ciphertexts. The
// engine logs a warning for a view field found holding a sealed copy
// without it.
func PersonalCopies[S any](fields ...string) Option[S] {
	return func(a *Aggregate[S]) {
		a.settings.PersonalCopies = append(a.settings.PersonalCopies, fields...)
		sort.Strings(a.settings.PersonalCopies)
	}
}

// SubjectIsID is the subject function of an aggregate type whose instances
// are the data subjects themselves: the subject is the instance's id.
func SubjectIsID(aggregateID string) string { return aggregateID }

type personal struct {
	subject func(string) string
	fields  []string
}

// PersonalData is a [Definition] with personal fields. *Aggregate[S]
// implements it.
type PersonalData interface {
	// PersonalFields returns the personal top-level fields and the subject
	// function, or no fields when the type has none.
	PersonalFields() (fields []string, subject func(aggregateID string) string)
}

// PersonalFields returns the fields declared with [Personal] and the
// subject function.
func (a *Aggregate[S]) PersonalFields() ([]string, func(string) string) {
	if a.personal == nil {
		return nil, nil
	}
	return a.personal.fields, a.personal.subject
}
