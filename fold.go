package plait

import (
	"encoding/json"
	"fmt"
)

// Held is one instance's state kept decoded in memory, for work that runs
// many commands against the same instances, such as a view rebuild. It
// gives the same changes and the same encoded state as Decide and Evolve on
// the encoded state, without decoding and encoding the state each time.
type Held interface {
	// Decide runs the command against the held state; current.State is
	// ignored.
	Decide(current Current, cmd Command) ([]Change, error)
	// Apply folds the changes into the held state, all of them or, when
	// one fails, none.
	Apply(changes []Change) error
	// Encode returns the held state encoded, as Evolve would have left it.
	Encode() (json.RawMessage, error)
}

// Holder is a definition that can hold states decoded. *Aggregate[S] is one.
type Holder interface {
	// Hold decodes state (nil for a new instance) and holds it.
	Hold(state json.RawMessage) (Held, error)
}

// Hold decodes the state and holds it; see Holder.
func (a *Aggregate[S]) Hold(state json.RawMessage) (Held, error) {
	s, err := a.decodeState(state)
	if err != nil {
		return nil, err
	}
	return &held[S]{a: a, s: s}, nil
}

type held[S any] struct {
	a *Aggregate[S]
	s S
}

func (h *held[S]) Decide(current Current, cmd Command) ([]Change, error) {
	return h.a.decideState(h.s, current, cmd)
}

func (h *held[S]) Apply(changes []Change) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("evolve %s panicked: %v", h.a.typ, r)
		}
	}()
	s := h.s // evolve functions are pure: they return a new state
	for _, c := range changes {
		ev, ok := h.a.evolvers[c.Name]
		if !ok {
			return fmt.Errorf("%s has no event %q", h.a.typ, c.Name)
		}
		v, _ := c.typed.of(c.Data)
		if s, err = ev(s, c.Data, v); err != nil {
			return err
		}
	}
	h.s = s
	return nil
}

func (h *held[S]) Encode() (json.RawMessage, error) {
	return json.Marshal(h.s)
}
