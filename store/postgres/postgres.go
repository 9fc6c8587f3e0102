package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/plaithq/plait/engine"
)

// Errors a caller may branch on with errors.Is.
var (
	// ErrConflict: another writer committed first what this commit writes (a
	// command id, an event's seq, a newer instance record or a further
	// consumed offset). Nothing of the commit was written; reload and retry.
	// It wraps engine.ErrLostRace.
	ErrConflict = fmt.Errorf("postgres: conflicting write (%w)", engine.ErrLostRace)
	// ErrUnstorable: the batch holds a value PostgreSQL cannot store (a NUL
	// character or an unpaired surrogate in a JSON string, invalid UTF-8).
	// Nothing of the commit was written.
	ErrUnstorable = errors.New("postgres: value cannot be stored")
	// ErrCopyStaged: StageView found a copy of the view staged already, by
	// this process or another sharing the schema; it is being rebuilt. It
	// comes wrapped with engine.ErrRebuilding.
	ErrCopyStaged = errors.New("postgres: a copy of the view is staged already")
)

// Options choose where the store lives in the database. The zero value uses
// the tables without prefix in schema "public".
type Options struct {
	// Schema holds the tables (default "public"); it is created when missing.
	// Letters, digits and _, not starting with a digit.
	Schema string
	// Prefix starts every table's name, so that several applications can
	// share one schema. Letters, digits and _, at most 24.
	Prefix string
	// MaxConns caps the connections Open's pool makes. When 0, the
	// connection string's pool_max_conns applies, or else 16.
	MaxConns int32
	// ReadOnly opens a schema that another application made and keeps
	// up, to read its log (as an engine.EventSource): nothing is created
	// or migrated, and the schema must be one this program can read.
	ReadOnly bool
	// Application names the application that runs on the schema: a
	// schema another application claimed is refused
	// (engine.ErrOtherApplication) before anything in it is changed, and
	// one no application claimed yet (new, or of a release before the
	// claims) is claimed for it, unless ReadOnly. Empty, the schema is
	// opened whoever claimed it.
	Application string
}

var identPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func (o *Options) check() error {
	if o.Schema == "" {
		o.Schema = "public"
	}
	if !identPattern.MatchString(o.Schema) {
		return fmt.Errorf("postgres: schema %q: want letters, digits or _, not starting with a digit", o.Schema)
	}
	if o.Prefix != "" && (!identPattern.MatchString(o.Prefix) || len(o.Prefix) > 24) {
		return fmt.Errorf("postgres: prefix %q: want at most 24 letters, digits or _, not starting with a digit", o.Prefix)
	}
	return nil
}

// Store is the PostgreSQL store. It is safe for concurrent use, and any
// number of processes may use one schema at once.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	opts    Options
	// bytewise is true when the database's collation orders strings by
	// bytes, so a prefix filter can be an index range.
	bytewise bool
	// lockKey is the advisory lock that serialises schema changes.
	lockKey int64
	sql     statements
	search  searchFields
}

var _ engine.Store = (*Store)(nil)

// Open connects to the database at connString (a postgres:// URL or a
// key=value string, as pgx parses it), migrates the schema and returns the
// store. Close closes its connections.
func Open(ctx context.Context, connString string, opts Options) (*Store, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse connection string: %w", err)
	}
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(connString, "pool_max_conns"):
		cfg.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s, err := New(ctx, pool, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

// New returns the store over an existing pool, for applications that share
// one, and migrates the schema. Close leaves the pool open.
func New(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Store, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte("plait schema " + opts.Schema + "." + opts.Prefix))
	s := &Store{pool: pool, opts: opts, lockKey: int64(h.Sum64())}
	s.sql = newStatements(s.table, true)
	// The database's default collation orders JSONB strings. Its provider
	// column exists from PostgreSQL 15 on: read through to_jsonb, it is
	// NULL (libc) before.
	var collate string
	var provider *string
	err := pool.QueryRow(ctx, `SELECT datcollate, to_jsonb(d) ->> 'datlocprovider'
		FROM pg_database d WHERE datname = current_database()`).Scan(&collate, &provider)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s.bytewise = bytewise(collate, provider)
	if opts.ReadOnly {
		if err = s.checkReadable(ctx); err == nil && opts.Application != "" {
			if err = s.checkApplication(ctx, pool); err != nil {
				err = fmt.Errorf("postgres: %w", err)
			}
		}
	} else {
		err = s.migrate(ctx)
	}
	if err == nil {
		err = s.loadSearchFields(ctx)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes the store's connections when Open made them.
func (s *Store) Close() error {
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

// Pool returns the connection pool, for callers that need their own queries
// in the same database.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Schema returns the schema holding the store's tables.
func (s *Store) Schema() string { return s.opts.Schema }

// table returns the quoted, schema-qualified name of table.
func (s *Store) table(name string) string {
	return pgx.Identifier{s.opts.Schema, s.opts.Prefix + name}.Sanitize()
}

// literal quotes s as an SQL string literal. Type and field names are
// inlined, not bound, so the planner matches the partial expression indexes.
func literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// bytewise reports whether a database collation orders UTF-8 strings by
// their bytes: libc's C, POSIX and C.UTF-8, and the builtin provider's
// collations (code point order); never ICU's.
func bytewise(collate string, provider *string) bool {
	switch {
	case provider != nil && *provider == "b":
		return true
	case provider != nil && *provider != "c":
		return false
	}
	switch strings.ToLower(collate) {
	case "c", "posix", "c.utf8", "c.utf-8":
		return true
	}
	return false
}
