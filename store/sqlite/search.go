package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/plaithq/plait"
	"modernc.org/sqlite"
)

// searchKeyFunc is the SQL function that gives the plait.SearchKey of a
// JSON string, and NULL for any other JSON value: the index of a
// searchable field holds the keys of its values, and a search compares
// them with the key of what is searched for. Plait's keys, not a collation
// of SQLite's, so that a search finds what it finds in PostgreSQL.
//
// The function is the store's own: a file with searchable fields can be
// read by any SQLite, but another program's write of an instance of such a
// type fails ("unknown function: plait_search_key()", and changes
// nothing), as do its
// PRAGMA integrity_check and VACUUM; plait backup checks a file with it.
const searchKeyFunc = "plait_search_key"

// storeDriver is SQLite with the store's functions: every connection the
// store opens is one of its, so that no other user of the driver in the
// process sees them.
var storeDriver = newDriver()

func newDriver() *sqlite.Driver {
	d := &sqlite.Driver{}
	d.MustRegisterDeterministicScalarFunction(searchKeyFunc, 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		// The value's JSON (state -> '$.field'), so that a string is
		// told from an object or a list, which have no key.
		j, ok := args[0].(string)
		var s string
		if !ok || !strings.HasPrefix(j, `"`) || json.Unmarshal([]byte(j), &s) != nil {
			return nil, nil
		}
		return plait.SearchKey(s), nil
	})
	return d
}

// connector opens connections of storeDriver to one data source.
type connector struct{ dsn string }

func (c connector) Connect(context.Context) (driver.Conn, error) { return storeDriver.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return storeDriver }

// openDB opens a pool of connections to the data source name dsn, as
// sql.Open with the driver "sqlite" does, with the store's functions. A
// dsn whose query does not parse is an error.
func openDB(dsn string) (*sql.DB, error) {
	if _, err := sqlite.NewConnector(dsn); err != nil {
		return nil, err
	}
	return sql.OpenDB(connector{dsn}), nil
}

// searchSuffix ends the name of the index of a searchable field's keys:
// indexName(phys, field) + searchSuffix. No field's name holds it.
const searchSuffix = "~search"

// searchIndexDDL creates the index of the keys of field over the instances
// of phys.
func searchIndexDDL(phys, field string) string {
	return fmt.Sprintf(`CREATE INDEX IF NOT EXISTS "%s" ON instances(%s, id) WHERE type = '%s'`,
		indexName(phys, field)+searchSuffix, searchExpr(field), phys)
}

// searchExpr is the key of field's value, as its index holds it: a
// query's expression must be the same for SQLite to use the index.
func searchExpr(field string) string {
	return fmt.Sprintf("%s(state -> '$.%s')", searchKeyFunc, field)
}

// dropSearchIndexes drops the indexes of the keys of the fields of phys
// that are no longer searchable: each would compute keys at every write,
// to no use. An index is known to be phys's by its condition (the names
// of "a" and "a_b" could be read either way).
func (s *Store) dropSearchIndexes(ctx context.Context, phys string, searchable []string) error {
	rows, err := s.w.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'instances'
		AND name LIKE '%`+searchSuffix+`' AND sql LIKE ?`, "% WHERE type = '"+phys+"'")
	if err != nil {
		return fmt.Errorf("sqlite: search indexes of %s: %w", phys, err)
	}
	var unused []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: search indexes of %s: %w", phys, err)
		}
		field := strings.TrimSuffix(strings.TrimPrefix(name, indexName(phys, "")), searchSuffix)
		if !slices.Contains(searchable, field) {
			unused = append(unused, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: search indexes of %s: %w", phys, err)
	}
	for _, name := range unused {
		s.physMu.Lock()
		delete(s.indexes, name) // no list uses it from now on
		s.physMu.Unlock()
		if _, err := s.w.ExecContext(ctx, `DROP INDEX IF EXISTS "`+name+`"`); err != nil {
			return fmt.Errorf("sqlite: drop index %s: %w", name, err)
		}
	}
	return nil
}

// OpenSQL opens the database file at path with database/sql, as sql.Open
// with the driver "sqlite" does, and with the functions the store's
// indexes call (plait_search_key), without which SQLite refuses to write
// an instance of a type with searchable fields or to VACUUM the file: for
// tools and tests that read or maintain a store with SQL of their own. A
// write through it bypasses the store's invariants: stop its server first.
func OpenSQL(path string) (*sql.DB, error) { return openDB("file:" + path) }
