package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/plaithq/plait/engine"
)

// rowQuerier reads a row: a pool or a transaction.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// checkApplication returns an error wrapping engine.ErrOtherApplication
// when the schema names an application other than Options.Application.
func (s *Store) checkApplication(ctx context.Context, q rowQuerier) error {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, s.table("store_meta")).Scan(&exists); err != nil {
		return fmt.Errorf("read the schema's application: %w", err)
	}
	if !exists {
		return nil
	}
	var got string
	err := q.QueryRow(ctx, `SELECT value FROM `+s.table("store_meta")+` WHERE key = 'application'`).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the schema's application: %w", err)
	}
	if got != s.opts.Application {
		return fmt.Errorf("%w: schema %s holds the store of application %q, not %q (one renamed takes it back with UPDATE %s SET value = '%s' WHERE key = 'application')",
			engine.ErrOtherApplication, s.opts.Schema, got, s.opts.Application, s.table("store_meta"), s.opts.Application)
	}
	return nil
}
