package engine

import (
	"context"
	"fmt"
)

// UndecidedFinder is a CommandLog that can tell whether a command was
// appended to it, by any instance, and is not decided yet.
type UndecidedFinder interface {
	// Undecided reports whether command id is in the log past the offsets
	// the store committed: acknowledged, its outcome not recorded yet.
	Undecided(ctx context.Context, id string) (bool, error)
}

// PendingAnywhere reports whether command id is acknowledged but has no
// outcome yet. Embedded it is Pending. Scaled out, the command may have
// been sent to another instance: when it is not pending here, the command
// log, if it can tell (an UndecidedFinder), is asked whether the command
// is in it and not decided yet.
func (e *Engine) PendingAnywhere(ctx context.Context, id string) (bool, error) {
	if e.Pending(id) {
		return true, nil
	}
	if !e.scaled() || e.undecided == nil {
		return false, nil
	}
	ok, err := e.undecided.Undecided(ctx, id)
	if err != nil {
		return false, fmt.Errorf("engine: is %s in the command log: %w", id, err)
	}
	return ok, nil
}
