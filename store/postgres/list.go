package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// afterPrefix is the least string above every string that starts with p,
// and false if there is none (p holds only U+10FFFF): p with its last code
// point that is not U+10FFFF replaced by the next one, what follows
// dropped. Under a bytewise collation the strings from p up to it are
// those that start with p, so a prefix filter is a range that uses the
// index. (p followed by U+10FFFF would leave out the strings going on with
// it.) p is valid UTF-8.
func afterPrefix(p string) (string, bool) {
	for p != "" {
		r, size := utf8.DecodeLastRuneInString(p)
		p = p[:len(p)-size]
		switch {
		case r == utf8.MaxRune:
			continue
		case r == 0xD7FF: // the surrogates are no characters
			r = 0xE000
		default:
			r++
		}
		return p + string(r), true
	}
	return "", false
}

// List runs a list query with keyset pagination; see engine.Queries. It has
// the embedded store's semantics: eq matches a field equal to the value as a
// string, as a number when the value is one and as a boolean when it is true
// or false; prefix matches strings starting with the value, and search
// those whose plait.SearchKey starts with the value's; the order is the
// sort field's, then the id, both reversed by Desc. Fields compare as JSONB
// (see the package documentation). The type and field names must be plain
// names (the caller checks them): they are inlined, so the planner matches
// the partial expression indexes EnsureIndexes creates.
//
// A search in the ids' order first walks the primary key a little way,
// which finds a page of a broad search at once; a rare one, which that
// finds too few of, reads the index of the keys and sorts what it finds.
func (s *Store) List(ctx context.Context, typ string, q engine.ListQuery) (engine.ListPage, error) {
	if searchWalks(q) {
		page, err := s.listPage(ctx, typ, q, true)
		if err != nil || page.Next != "" {
			return page, err
		}
	}
	return s.listPage(ctx, typ, q, false)
}

// searchWalk is how many instances a search in the ids' order reads of the
// primary key before it takes the index of the keys.
const searchWalk = 2000

// searchWalks reports whether q is a search in the ids' order of all the
// type's instances, with no equality, which an index would narrow more.
func searchWalks(q engine.ListQuery) bool {
	if q.Sort != "" || q.Owner != "" || slices.ContainsFunc(q.Filters, func(f engine.Filter) bool { return f.Op == "eq" }) {
		return false
	}
	for _, f := range q.Filters {
		if f.Op == "search" {
			return true
		}
	}
	return false
}

// listPage runs the list query of q; with walk, over the next searchWalk
// instances in the ids' order only (see List).
func (s *Store) listPage(ctx context.Context, typ string, q engine.ListQuery, walk bool) (engine.ListPage, error) {
	query, args, limit, err := s.listQuery(typ, q, walk)
	if err != nil || query == "" {
		return engine.ListPage{}, err
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return engine.ListPage{}, fmt.Errorf("postgres: list %s: %w", typ, err)
	}
	defer rows.Close()
	var page engine.ListPage
	var last cursor
	for rows.Next() {
		var item engine.ListItem
		var lineage, sortValue, state []byte
		dest := []any{&item.ID, &item.Seq, &lineage, &sortValue, &state}
		values := make([][]byte, len(q.Fields))
		for i := range values {
			dest = append(dest, &values[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return engine.ListPage{}, fmt.Errorf("postgres: list %s: %w", typ, err)
		}
		if len(page.Items) == limit {
			page.Next = encodeCursor(last)
			break
		}
		if err := decodeOptional(lineage, &item.Lineage); err != nil {
			return engine.ListPage{}, fmt.Errorf("postgres: list %s: decode lineage of %s: %w", typ, item.ID, err)
		}
		if q.Fields == nil {
			if err := json.Unmarshal(state, &item.Fields); err != nil {
				return engine.ListPage{}, fmt.Errorf("postgres: list %s: decode state of %s: %w", typ, item.ID, err)
			}
		} else {
			item.Fields = make(map[string]json.RawMessage, len(q.Fields))
			for i, f := range q.Fields {
				if values[i] != nil {
					item.Fields[f] = values[i]
				}
			}
			item.Lineage = projectLineage(item.Lineage, q.Fields)
		}
		page.Items = append(page.Items, item)
		last = cursor{Value: sortValue, ID: item.ID, Order: q.Order()}
	}
	if err := rows.Err(); err != nil {
		return engine.ListPage{}, fmt.Errorf("postgres: list %s: %w", typ, err)
	}
	return page, nil
}

// listQuery builds the SQL of a list query and its arguments; it returns
// no query when nothing can match. The query selects id, seq, lineage, the
// sort value, the state (or NULL) and, with a projection, each field. With
// walk, for a list in the ids' order, it reads the next searchWalk
// instances of the type only.
func (s *Store) listQuery(typ string, q engine.ListQuery, walk bool) (query string, args []any, limit int, err error) {
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where := []string{"type = " + literal(typ)}
	searched := false // a search filter narrows the list
	for _, f := range q.Filters {
		if !textOK(f.Value) {
			// No stored string holds NUL or invalid UTF-8: nothing matches.
			return "", nil, 0, nil
		}
		switch {
		case f.OnID && f.Op == "eq":
			where = append(where, "id = "+arg(f.Value)+"::text")
			continue
		case f.OnID && f.Op == "prefix":
			where = append(where, "starts_with(id, "+arg(f.Value)+"::text)")
			continue
		case f.OnID:
			return "", nil, 0, fmt.Errorf("postgres: list %s: unknown operator %q", typ, f.Op)
		}
		x := sortExpr(f.Field)
		switch f.Op {
		case "eq":
			where = append(where, x+" = ANY("+arg(eqCandidates(f.Value))+"::text[]::jsonb[])")
		case "prefix":
			if s.bytewise {
				lo, _ := json.Marshal(f.Value)
				where = append(where, x+" >= "+arg(string(lo))+"::text::jsonb")
				if after, ok := afterPrefix(f.Value); ok {
					hi, _ := json.Marshal(after)
					where = append(where, x+" < "+arg(string(hi))+"::text::jsonb")
				} else {
					// No string is above the range: jsonb orders numbers,
					// booleans, arrays and objects above every string.
					where = append(where, "jsonb_typeof("+x+") = 'string'")
				}
			} else {
				where = append(where, "jsonb_typeof("+x+") = 'string'")
			}
			where = append(where, "starts_with(state ->> "+literal(f.Field)+", "+arg(f.Value)+"::text)")
		case "search":
			// The keys' index is of the C collation, whatever the
			// database's: a range of it, byte by byte.
			searched = true
			key, k := plait.SearchKey(f.Value), searchExpr(f.Field)
			where = append(where, k+" >= "+arg(key)+"::text")
			if after, ok := afterPrefix(key); ok {
				where = append(where, k+" < "+arg(after)+"::text")
			} else {
				where = append(where, "starts_with("+k+", "+arg(key)+"::text)")
			}
		default:
			return "", nil, 0, fmt.Errorf("postgres: list %s: unknown operator %q", typ, f.Op)
		}
	}
	if q.Owner != "" {
		if !textOK(q.Owner) {
			return "", nil, 0, nil
		}
		where = append(where, "owner = "+arg(q.Owner)+"::text")
	}
	sort := "NULL::jsonb"
	if q.Sort != "" {
		sort = sortExpr(q.Sort)
	}
	cmp := ">"
	if q.Desc {
		cmp = "<"
	}
	if q.After != "" {
		c, err := decodeCursor(q.After, q.Order())
		if err != nil {
			return "", nil, 0, err
		}
		if q.Sort == "" {
			where = append(where, "id "+cmp+" "+arg(c.ID)+"::text")
		} else {
			v := string(c.Value)
			if v == "" {
				v = "null"
			}
			where = append(where, fmt.Sprintf("(%s, id) %s (%s::text::jsonb, %s::text)", sort, cmp, arg(v), arg(c.ID)))
		}
	}
	dir := " ASC"
	if q.Desc {
		dir = " DESC"
	}
	order := "id" + dir
	from := s.table("instances")
	if q.Sort != "" {
		order = sort + dir + ", id" + dir
	} else if walk {
		// The type's next instances by the primary key, under the
		// name of the table, so that the conditions read them alike.
		var window []string
		for _, w := range where {
			if w == "type = "+literal(typ) || strings.HasPrefix(w, "id ") {
				window = append(window, w)
			}
		}
		from = fmt.Sprintf("(SELECT * FROM %s WHERE %s ORDER BY id%s LIMIT %d) AS instances",
			from, strings.Join(window, " AND "), dir, searchWalk)
	} else if searched {
		// In the order of the ids, which the primary key gives, the
		// planner walks that and filters every instance of the type for
		// a rare match, where a range of the keys' index reads only the
		// matches, to sort them: an expression it does not order by
		// leaves it the index.
		order = "(id || '')" + dir
	}
	limit = q.Limit
	if limit <= 0 {
		limit = 50
	}
	cols := "state"
	if q.Fields != nil {
		cols = "NULL::jsonb"
		for _, f := range q.Fields {
			cols += ", state -> " + literal(f)
		}
	}
	query = fmt.Sprintf("SELECT id, seq, lineage, %s, %s FROM %s WHERE %s ORDER BY %s LIMIT %d",
		sort, cols, from, strings.Join(where, " AND "), order, limit+1)
	return query, args, limit, nil
}

// eqCandidates are the JSON values a field equal to v may hold: the string
// v, the number v when it reads as one, and the boolean v when it is true
// or false.
func eqCandidates(v string) []string {
	str, _ := json.Marshal(v)
	cands := []string{string(str)}
	if n, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(n, 0) && !math.IsNaN(n) {
		if json.Valid([]byte(v)) {
			cands = append(cands, v) // exact, even past float64's precision
		} else {
			cands = append(cands, strconv.FormatFloat(n, 'g', -1, 64)) // such as "+1" or ".5"
		}
	}
	if v == "true" || v == "false" {
		cands = append(cands, v)
	}
	return cands
}

// projectLineage keeps the lineage of the projected fields.
func projectLineage(all map[string]plait.Lineage, fields []string) map[string]plait.Lineage {
	var kept map[string]plait.Lineage
	for _, f := range fields {
		if l, ok := all[f]; ok {
			if kept == nil {
				kept = map[string]plait.Lineage{}
			}
			kept[f] = l
		}
	}
	return kept
}

// cursor is the sort value, as JSON, and the id of the last item of a page.
type cursor struct {
	Value json.RawMessage `json:"v,omitempty"`
	ID    string          `json:"i"`
	Order string          `json:"o,omitempty"` // the list's, see engine.ListQuery.Order
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s, order string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.ID == "" || c.Order != order || !textOK(c.ID) || (c.Value != nil && !jsonOK(c.Value)) {
		return c, fmt.Errorf("%w: %q", engine.ErrBadCursor, s)
	}
	return c, nil
}
