package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/plaithq/plait/engine"
)

// ClaimApplication records that the store holds the data of the
// application named name, unless it holds another's: then it returns an
// error wrapping engine.ErrOtherApplication and changes nothing. A schema
// of a release before stores named their application is claimed by the
// first that runs on it; a store opened read-only is only compared.
func (s *Store) ClaimApplication(ctx context.Context, name string) error {
	var got string
	var err error
	if s.opts.ReadOnly {
		var exists bool
		if err = s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, s.table("store_meta")).Scan(&exists); err == nil && exists {
			err = s.pool.QueryRow(ctx, `SELECT value FROM `+s.table("store_meta")+` WHERE key = 'application'`).Scan(&got)
			if errors.Is(err, pgx.ErrNoRows) {
				err = nil
			}
		}
	} else {
		err = s.pool.QueryRow(ctx, `INSERT INTO `+s.table("store_meta")+` AS m (key, value) VALUES ('application', $1)
			ON CONFLICT (key) DO UPDATE SET value = m.value RETURNING value`, name).Scan(&got)
	}
	if err != nil {
		return fmt.Errorf("postgres: read the store's application: %w", err)
	}
	if got != "" && got != name {
		return fmt.Errorf("%w: schema %s holds the store of application %q, not %q", engine.ErrOtherApplication, s.opts.Schema, got, name)
	}
	return nil
}
