package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	"github.com/plaithq/plait"
	"modernc.org/sqlite"
)

// searchKeyFunc is the SQL function that gives a text's plait.SearchKey:
// the index of a searchable field holds the keys of its values, and a
// search compares them with the key of what is searched for. Plait's keys,
// not a collation of SQLite's, so that a search finds what it finds in
// PostgreSQL. A value that is not text has no key (NULL).
//
// The function is the store's own: a file with searchable fields can be
// read by any SQLite, but its instances of such types written only by a
// Plait store, which has it (another program's write fails with "no such
// function", and changes nothing).
const searchKeyFunc = "plait_search_key"

// storeDriver is SQLite with the store's functions: every connection the
// store opens is one of its, so that no other user of the driver in the
// process sees them.
var storeDriver = newDriver()

func newDriver() *sqlite.Driver {
	d := &sqlite.Driver{}
	d.MustRegisterDeterministicScalarFunction(searchKeyFunc, 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		s, ok := args[0].(string)
		if !ok {
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
	return fmt.Sprintf("%s(json_extract(state, '$.%s'))", searchKeyFunc, field)
}
