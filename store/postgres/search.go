package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/plaithq/plait"
)

// A searchable field (plait.Searchable) is searched by the plait.SearchKey
// of its value, which PostgreSQL cannot compute: the store computes the
// keys of an instance's searchable fields when it writes the instance, and
// keeps them beside its state, in the column search, a JSON object of
// field → key (null for a value that is not text), and "@seq" → the seq of
// the record they are of. Each field has an index of its keys under the C
// collation, so that a search is a range of it, compared byte by byte as
// in SQLite.
//
// Which fields of a type are searchable is recorded in the table
// type_fields by EnsureIndexes, once their keys are written, and read by
// every store that opens the schema, so that each process writing the
// type keys it, whether it called EnsureIndexes or not. Keys missing, of
// an older record or of other fields (written before the field was
// declared, or by a process that did not know it yet) are found by an
// index of them and written by the next EnsureIndexes.

// seqKey is the member of a search column that holds its record's seq.
const seqKey = "@seq"

// searchFields are the searchable fields of each type.
type searchFields struct {
	mu sync.RWMutex
	of map[string][]string
}

// set records the searchable fields of typ.
func (f *searchFields) set(typ string, fields []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.of == nil {
		f.of = map[string][]string{}
	}
	f.of[typ] = slices.Clone(fields)
}

// doc is the search column of an instance of typ whose state is state, at
// seq.
func (f *searchFields) doc(typ string, state json.RawMessage, seq int64) string {
	f.mu.RLock()
	fields := f.of[typ]
	f.mu.RUnlock()
	return searchDoc(fields, state, seq)
}

// loadSearchFields reads which fields of each type are searchable, as
// EnsureIndexes recorded them; a schema from before search keys has none.
func (s *Store) loadSearchFields(ctx context.Context) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, s.table("type_fields")).Scan(&exists); err != nil || !exists {
		return err
	}
	rows, err := s.pool.Query(ctx, `SELECT type, searchable FROM `+s.table("type_fields")+` WHERE searchable <> '{}'`)
	if err != nil {
		return fmt.Errorf("postgres: read the searchable fields: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ string
		var fields []string
		if err := rows.Scan(&typ, &fields); err != nil {
			return fmt.Errorf("postgres: read the searchable fields: %w", err)
		}
		s.search.set(typ, fields)
	}
	return rows.Err()
}

// searchDoc is the search column of a state at seq whose searchable fields
// are fields: the keys of their values, "" (stored as NULL) for none.
func searchDoc(fields []string, state json.RawMessage, seq int64) string {
	if len(fields) == 0 {
		return ""
	}
	var top map[string]json.RawMessage
	_ = json.Unmarshal(state, &top) // a state no object has no fields: null keys
	doc := make(map[string]any, len(fields)+1)
	for _, f := range fields {
		var v string
		if raw := top[f]; len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &v) == nil {
			doc[f] = plait.SearchKey(v)
		} else {
			doc[f] = nil
		}
	}
	doc[seqKey] = seq
	b, _ := json.Marshal(doc) // strings, nulls and a number: encoding cannot fail
	return string(b)
}

// searchExpr is the key of field, as its index holds it: a query's
// expression must be the same for the planner to use the index.
func searchExpr(field string) string {
	return "((search ->> " + literal(field) + ") COLLATE \"C\")"
}

// searchIndexName names the index of the keys of typ.field: no type holds
// the "~" of its made-up type, so it is no indexed field's.
func (s *Store) searchIndexName(typ, field string) string {
	return s.indexName(typ+"~search", field)
}

// backfillChunk is how many instances one statement of a backfill keys.
const backfillChunk = 500

// staleKeys is the condition of an instance whose keys of fields (sorted)
// are stale: missing, of other fields, or of an older record. The index
// staleIndexName holds a type's such instances, which writers that know
// the fields never leave behind, so that it stays small.
func staleKeys(fields []string) string {
	quoted := make([]string, len(fields))
	for i, f := range fields {
		quoted[i] = literal(f)
	}
	return `(search IS NULL OR NOT search ?& ARRAY[` + strings.Join(quoted, ", ") + `]::text[] OR (search ->> '` + seqKey + `')::bigint IS DISTINCT FROM seq)`
}

// staleIndexName names the index of the instances of typ whose keys are
// stale (see staleKeys).
func (s *Store) staleIndexName(typ string) string {
	return s.indexName(typ+"~search", "~stale")
}

// ensureSearchIndexes makes the indexes of the keys of the searchable
// fields of typ, and of its instances whose keys are stale, under the
// schema lock; recorded are the fields its keys were last written for.
// The index of stale keys is made again when the fields change, for its
// condition names them; the index of a field no longer searchable is
// dropped. From now on, this store's writes key the fields.
func (s *Store) ensureSearchIndexes(ctx context.Context, conn *pgx.Conn, typ string, recorded, fields []string) error {
	drop := func(name string) error {
		_, err := conn.Exec(ctx, `DROP INDEX CONCURRENTLY IF EXISTS `+pgx.Identifier{s.opts.Schema, name}.Sanitize())
		return err
	}
	s.search.set(typ, fields)
	if !slices.Equal(recorded, fields) {
		if err := drop(s.staleIndexName(typ)); err != nil {
			return fmt.Errorf("postgres: drop the index of the stale keys of %s: %w", typ, err)
		}
		for _, f := range recorded {
			if !slices.Contains(fields, f) {
				if err := drop(s.searchIndexName(typ, f)); err != nil {
					return fmt.Errorf("postgres: drop the search index %s.%s: %w", typ, f, err)
				}
			}
		}
	}
	if len(fields) == 0 {
		return nil
	}
	for _, f := range fields {
		if err := s.ensureIndex(ctx, conn, typ, s.searchIndexName(typ, f), searchExpr(f)); err != nil {
			return fmt.Errorf("postgres: search index %s.%s: %w", typ, f, err)
		}
	}
	if err := s.ensureIndexOn(ctx, conn, typ, s.staleIndexName(typ), "id", staleKeys(fields)); err != nil {
		return fmt.Errorf("postgres: index of the stale keys of %s: %w", typ, err)
	}
	return nil
}

// backfillSearch writes the search column of the instances of typ whose
// keys of fields (sorted) are stale, which the index of such instances
// finds, a chunk at a time, each record unless it changed meanwhile (its
// writer keys it).
func (s *Store) backfillSearch(ctx context.Context, typ string, fields []string) error {
	instances := s.table("instances")
	rows, err := s.pool.Query(ctx, `SELECT id FROM `+instances+` WHERE type = `+literal(typ)+` AND `+staleKeys(fields))
	if err != nil {
		return fmt.Errorf("find instances to key: %w", err)
	}
	stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("find instances to key: %w", err)
	}
	for chunk := range slices.Chunk(stale, backfillChunk) {
		rows, err := s.pool.Query(ctx, `SELECT id, seq, state::text FROM `+instances+` WHERE type = $1 AND id = ANY($2)`, typ, chunk)
		if err != nil {
			return fmt.Errorf("read instances to key: %w", err)
		}
		var ids, docs, states []string
		var seqs []int64
		for rows.Next() {
			var id, state string
			var seq int64
			if err := rows.Scan(&id, &seq, &state); err != nil {
				rows.Close()
				return fmt.Errorf("read instances to key: %w", err)
			}
			ids, seqs, states = append(ids, id), append(seqs, seq), append(states, state)
			docs = append(docs, searchDoc(fields, json.RawMessage(state), seq))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read instances to key: %w", err)
		}
		if _, err := s.pool.Exec(ctx, `UPDATE `+instances+` t SET search = u.doc::jsonb
			FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[]) AS u(id, seq, state, doc)
			WHERE t.type = $1 AND t.id = u.id AND t.seq = u.seq AND t.state = u.state::jsonb`,
			typ, ids, seqs, states, docs); err != nil {
			return fmt.Errorf("key instances: %w", err)
		}
	}
	return nil
}
