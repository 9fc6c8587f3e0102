package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/plaithq/plait"
)

// A searchable field (plait.Searchable) is searched by the plait.SearchKey
// of its value, which PostgreSQL cannot compute: the store computes the
// keys of an instance's searchable fields when it writes the instance, and
// keeps them beside its state, in the column search, a JSON object of
// field → key (null for a value that is not text). Each field has an
// index of its keys under the C collation, so that a search is a range of
// it, compared byte by byte as in SQLite.

// searchFields are the searchable fields of each type, as EnsureIndexes
// and StageView were told.
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

// doc is the search column of an instance of typ whose state is state.
func (f *searchFields) doc(typ string, state json.RawMessage) string {
	f.mu.RLock()
	fields := f.of[typ]
	f.mu.RUnlock()
	return searchDoc(fields, state)
}

// searchDoc is the search column of a state whose searchable fields are
// fields: the keys of their values, "" (stored as NULL) for none.
func searchDoc(fields []string, state json.RawMessage) string {
	if len(fields) == 0 {
		return ""
	}
	var top map[string]json.RawMessage
	_ = json.Unmarshal(state, &top) // a state no object has no fields: null keys
	doc := make(map[string]*string, len(fields))
	for _, f := range fields {
		var v string
		if raw := top[f]; len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &v) == nil {
			k := plait.SearchKey(v)
			doc[f] = &k
		} else {
			doc[f] = nil
		}
	}
	b, _ := json.Marshal(doc) // strings and nulls: encoding cannot fail
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

// backfillSearch writes the search column of the instances of typ that
// lack a key of fields: those written before the fields were declared
// searchable, or by a process that did not know them. An instance written
// meanwhile is left to its writer, which keys it itself.
func (s *Store) backfillSearch(ctx context.Context, conn *pgx.Conn, typ string, fields []string) error {
	instances := s.table("instances")
	after := ""
	for {
		rows, err := conn.Query(ctx, `SELECT id, seq, state::text FROM `+instances+`
			WHERE type = $1 AND id > $2 AND (search IS NULL OR NOT search ?& $3::text[])
			ORDER BY id LIMIT `+fmt.Sprint(backfillChunk), typ, after, fields)
		if err != nil {
			return fmt.Errorf("find instances to key: %w", err)
		}
		var ids, docs []string
		var seqs []int64
		for rows.Next() {
			var id, state string
			var seq int64
			if err := rows.Scan(&id, &seq, &state); err != nil {
				rows.Close()
				return fmt.Errorf("find instances to key: %w", err)
			}
			ids, seqs, docs = append(ids, id), append(seqs, seq), append(docs, searchDoc(fields, json.RawMessage(state)))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("find instances to key: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		if _, err := conn.Exec(ctx, `UPDATE `+instances+` t SET search = u.doc::jsonb
			FROM unnest($2::text[], $3::bigint[], $4::text[]) AS u(id, seq, doc)
			WHERE t.type = $1 AND t.id = u.id AND t.seq = u.seq`, typ, ids, seqs, docs); err != nil {
			return fmt.Errorf("key instances: %w", err)
		}
		after = ids[len(ids)-1]
	}
}
