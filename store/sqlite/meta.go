package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/plaithq/plait/engine"
)

// ClaimApplication records that the store holds the data of the
// application named name, unless it holds another's: then it returns an
// error wrapping engine.ErrOtherApplication and changes nothing. A store of
// a release before stores named their application is claimed by the
// first that runs on it; a store opened read-only is only compared.
func (s *Store) ClaimApplication(ctx context.Context, name string) error {
	var got string
	var err error
	if s.readOnly {
		got, err = applicationIn(ctx, s.r)
	} else {
		err = s.w.QueryRowContext(ctx, `INSERT INTO store_meta(key, value) VALUES ('application', ?)
			ON CONFLICT(key) DO UPDATE SET value = value RETURNING value`, name).Scan(&got)
	}
	if err != nil {
		return fmt.Errorf("sqlite: read the store's application: %w", err)
	}
	if got != "" && got != name {
		return fmt.Errorf("%w: %s holds the store of application %q, not %q", engine.ErrOtherApplication, s.path, got, name)
	}
	return nil
}

// ApplicationOf returns the application whose store the file at path
// holds, "" for a store of a release before stores named it. It opens the
// file read-only.
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
func applicationIn(ctx context.Context, db *sql.DB) (string, error) {
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
