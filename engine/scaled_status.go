package engine

import (
	"context"
	"fmt"

	"github.com/plaithq/plait"
)

// UndecidedFinder is a CommandLog that can tell whether a command was
// appended to it, by any instance, and is not decided yet.
type UndecidedFinder interface {
	// Undecided returns command id if it is in the log past the offsets
	// the store committed: acknowledged, its outcome not recorded yet.
	Undecided(ctx context.Context, id string) (plait.Command, bool, error)
}

// PendingAnywhere returns command id if it is acknowledged but has no
// outcome yet, so that its sender can be told apart from other users.
// Embedded it is a command pending here. Scaled out, the command may have
// been sent to another instance: when it is not pending here, the command
// log, if it can tell (an UndecidedFinder), is asked whether the command
// is in it and not decided yet.
func (e *Engine) PendingAnywhere(ctx context.Context, id string) (plait.Command, bool, error) {
	if cmd, ok := e.pendingCommand(id); ok {
		return cmd, true, nil
	}
	if !e.scaled() || e.undecided == nil {
		return plait.Command{}, false, nil
	}
	cmd, ok, err := e.undecided.Undecided(ctx, id)
	if err != nil {
		return plait.Command{}, false, fmt.Errorf("engine: is %s in the command log: %w", id, err)
	}
	return cmd, ok, nil
}
