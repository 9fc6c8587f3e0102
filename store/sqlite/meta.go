package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/plaithq/plait/engine"
)

// querier is what reads a store's database: a pool or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// checkApplication returns an error wrapping engine.ErrOtherApplication
// when the store names an application other than app.
func (s *Store) checkApplication(ctx context.Context, db querier, app string) error {
	got, err := applicationIn(ctx, db)
	if err != nil {
		return fmt.Errorf("sqlite: read the application of %s: %w", s.path, err)
	}
	if got != "" && got != app {
		return fmt.Errorf("%w: %s holds the store of application %q, not %q", engine.ErrOtherApplication, s.path, got, app)
	}
	return nil
}

// ApplicationOf returns the application whose store the file at path
// holds, "" for a store no application claimed (see
// Options.Application). It opens the file read-only.
func ApplicationOf(ctx context.Context, path string) (string, error) {
	db, err := openDB("file:" + path + "?mode=ro")
	if err != nil {
		return "", fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	defer db.Close()
	app, err := applicationIn(ctx, db)
	if err != nil {
		return "", fmt.Errorf("sqlite: read the application of %s: %w", path, err)
	}
	return app, nil
}

// applicationIn reads the application a store's database names, "" when it
// names none.
func applicationIn(ctx context.Context, db querier) (string, error) {
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'store_meta'`).Scan(&exists); err != nil || !exists {
		return "", err
	}
	var app string
	err := db.QueryRowContext(ctx, `SELECT value FROM store_meta WHERE key = 'application'`).Scan(&app)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return app, err
}
