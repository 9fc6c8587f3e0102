package engine

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/plaithq/plait"
)

// evKey names one event of one aggregate type.
type evKey struct{ typ, name string }

// upcasters turn events recorded in an older shape into the current one.
// They are applied once, where the engine reads the store (see readPath),
// so every consumer — partitions, reactors, the relay, the history API,
// outcomes, rebuilds and folds — sees events at their current version.
type upcasters struct {
	current map[evKey]int
	// steps[k][v-1] turns version v of k into v+1.
	steps map[evKey][]func(json.RawMessage) (json.RawMessage, error)
}

// newUpcasters indexes the app's upcasters; it returns nil when no event of
// the app is above version 1, so reads cost nothing then. The app has been
// validated: every chain is complete.
func newUpcasters(app plait.App) *upcasters {
	u := &upcasters{current: map[evKey]int{}, steps: map[evKey][]func(json.RawMessage) (json.RawMessage, error){}}
	for _, d := range app.Aggregates {
		v, ok := d.(interface{ Events() []string })
		if !ok {
			continue
		}
		for _, name := range v.Events() {
			if n := plait.EventVersionOf(d, name); n > 1 {
				k := evKey{d.Type(), name}
				u.current[k] = n
				u.steps[k] = make([]func(json.RawMessage) (json.RawMessage, error), n-1)
			}
		}
	}
	if len(u.current) == 0 {
		return nil
	}
	for _, c := range app.Upcasters {
		k := evKey{c.Type, c.Event}
		if steps := u.steps[k]; c.From >= 1 && c.From <= len(steps) {
			steps[c.From-1] = c.Func
		}
	}
	return u
}

// errUpcast marks the failure of an upcaster: an event of the log that
// this release cannot read, which no retry mends until it is fixed.
var errUpcast = errors.New("engine: upcast")

// upcast brings ev to the current version of its name. An event already
// current, of a name without versions, or recorded by a newer release than
// this one (a version above the current) is left as it is.
func (u *upcasters) upcast(ev *plait.Event) error {
	if u == nil {
		return nil
	}
	k := evKey{ev.Type, ev.Name}
	current, ok := u.current[k]
	if !ok {
		return nil
	}
	v := max(ev.Version, 1)
	if v >= current {
		return nil
	}
	data := ev.Data
	for ; v < current; v++ {
		step := u.steps[k][v-1]
		if step == nil {
			return fmt.Errorf("%w %s.%s of event %s: no upcaster from version %d", errUpcast, ev.Type, ev.Name, ev.ID, v)
		}
		next, err := safeUpcast(step, data)
		if err != nil {
			return fmt.Errorf("%w %s.%s of event %s from version %d: %w", errUpcast, ev.Type, ev.Name, ev.ID, v, err)
		}
		data = next
	}
	ev.Data, ev.Version = data, current
	return nil
}

func (u *upcasters) upcastAll(evs []plait.Event) error {
	if u == nil {
		return nil
	}
	for i := range evs {
		if err := u.upcast(&evs[i]); err != nil {
			return err
		}
	}
	return nil
}

func safeUpcast(step func(json.RawMessage) (json.RawMessage, error), data json.RawMessage) (next json.RawMessage, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: upcaster panicked: %v", errInternal, r)
		}
	}()
	return step(data)
}

// eventVersion is the version the engine records for a new event: 0 for
// version 1, which is not written (see plait.Event.Version).
func eventVersion(def plait.Definition, name string) int {
	if n := plait.EventVersionOf(def, name); n > 1 {
		return n
	}
	return 0
}
