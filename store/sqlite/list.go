package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	fastjson "github.com/segmentio/encoding/json"
)

// afterPrefix ends the range of the strings that start with a prefix p:
// p followed by the byte 0xFF, which no UTF-8 text holds, sorts (bytewise)
// above p followed by any text, U+10FFFF included, and below every string
// beyond them, so a prefix filter is a range that uses the index. (p
// followed by U+10FFFF would leave out the strings going on with it.)
const afterPrefix = "\xff"

// List runs a list query with keyset pagination; see engine.Queries. The
// type and field names must be plain names (the caller checks them): the
// type is inlined so SQLite can use the type's partial indexes.
func (s *Store) List(ctx context.Context, typ string, q engine.ListQuery) (engine.ListPage, error) {
	for _, f := range q.Filters {
		if !utf8.ValidString(f.Value) {
			// No stored string is invalid UTF-8: nothing matches, not
			// even text whose bytes start with a piece of a character.
			return engine.ListPage{}, nil
		}
	}
	if page, done, err := s.searchPage(ctx, typ, q); err != nil || done {
		return page, err
	}
	page, walked, err := s.listPage(ctx, typ, q, listMode{walk: true})
	if err == nil && walked && page.Next == "" {
		// The walk of the sort field's index found too few of the user's
		// items near the cursor: their own index finds the page.
		page, _, err = s.listPage(ctx, typ, q, listMode{})
	}
	return page, err
}

// searchPage reads the page of a list that searches, when the way it is
// best read depends on how many instances its search matches (done is
// then true): a broad search in the ids' order reads the next searchWalk
// instances by the primary key first, and finds its page there at once,
// where the index of its keys would find, and sort, every match (should it
// find too few, the matches being elsewhere, the list is read as others
// are); a narrow search of a user's own items reads its few matches by the
// index of their keys, rather than compute the key of every item the user
// owns.
func (s *Store) searchPage(ctx context.Context, typ string, q engine.ListQuery) (page engine.ListPage, done bool, err error) {
	matches, searched, err := s.searchMatches(ctx, typ, q)
	if err != nil || !searched {
		return engine.ListPage{}, false, err
	}
	broad := matches >= searchWalk
	eq := slices.ContainsFunc(q.Filters, func(f engine.Filter) bool { return f.Op == "eq" })
	switch {
	case broad && q.Sort == "" && q.Owner == "" && !eq: // an equality narrows more
		end, err := s.walkEnd(ctx, typ, q)
		if err != nil {
			return engine.ListPage{}, false, err
		}
		page, _, err := s.listPage(ctx, typ, q, listMode{upTo: end, window: true})
		// A full page, or every instance left read.
		return page, err != nil || page.Next != "" || end == "", err
	case !broad && q.Owner != "":
		page, _, err := s.listPage(ctx, typ, q, listMode{byKeys: true})
		return page, true, err
	}
	return engine.ListPage{}, false, nil
}

// searchWalk is how many instances a search in the ids' order reads of the
// primary key before it takes the index of the keys.
const searchWalk = 2000

// primaryKey is the index SQLite makes of the primary key of instances,
// (type, id).
const primaryKey = "sqlite_autoindex_instances_1"

// searchMatches counts the instances of typ that the first search of q
// matches, by the index of its field's keys, up to searchWalk: how a list
// is best read depends on it. An instance read otherwise has its key
// computed, by a call of the store's function; a match the index finds
// has it stored. searched is false when q has no search with an index.
func (s *Store) searchMatches(ctx context.Context, typ string, q engine.ListQuery) (matches int, searched bool, err error) {
	i := slices.IndexFunc(q.Filters, func(f engine.Filter) bool { return f.Op == "search" })
	if i < 0 {
		return 0, false, nil
	}
	phys, f := s.physical(typ), q.Filters[i]
	index := indexName(phys, f.Field) + searchSuffix
	if !s.hasIndexNamed(index) {
		return 0, false, nil
	}
	key, k := plait.SearchKey(f.Value), searchExpr(f.Field)
	err = s.r.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM instances INDEXED BY "%s"
		WHERE type = '%s' AND %s >= ? AND %s < ? LIMIT %d)`, index, phys, k, k, searchWalk), key, key+afterPrefix).Scan(&matches)
	if err != nil {
		return 0, false, fmt.Errorf("sqlite: list %s: %w", typ, err)
	}
	return matches, true, nil
}

// walkEnd is the id of the searchWalk-th instance of typ after q's cursor,
// in q's order; "" when fewer follow it.
func (s *Store) walkEnd(ctx context.Context, typ string, q engine.ListQuery) (string, error) {
	cond, dir, args := "", "ASC", []any{}
	if q.Desc {
		dir = "DESC"
	}
	if q.After != "" {
		c, err := decodeCursor(q.After, q.Order())
		if err != nil {
			return "", err
		}
		cond = " AND id > ?"
		if q.Desc {
			cond = " AND id < ?"
		}
		args = append(args, c.ID)
	}
	var end string
	err := s.r.QueryRowContext(ctx, fmt.Sprintf(`SELECT id FROM instances WHERE type = '%s'%s ORDER BY id %s LIMIT 1 OFFSET %d`,
		s.physical(typ), cond, dir, searchWalk-1), args...).Scan(&end)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sqlite: list %s: %w", typ, err)
	}
	return end, nil
}

// listMode is how a list query reads the instances: with walk, a list of
// a user's own items sorted by an indexed field walks that index for at
// most walkLimit rows (see listQuery); with window, a list in the ids'
// order reads only those up to upTo ("" for all), by the primary key;
// with byKeys, a search reads the index of its field's keys, whatever
// else the list has.
type listMode struct {
	walk   bool
	window bool
	upTo   string
	byKeys bool
}

// listPage runs the list query of q, read as mode says (walked is true
// when it walked an index, and a page it did not fill may then be short of
// items that follow).
func (s *Store) listPage(ctx context.Context, typ string, q engine.ListQuery, mode listMode) (page engine.ListPage, walked bool, err error) {
	query, args, walked, err := s.listQuery(typ, q, mode)
	if err != nil {
		return engine.ListPage{}, false, err
	}
	limit := listLimit(q)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil && strings.Contains(err.Error(), "no such index") {
		// A rebuild swapped the view and dropped the old copy's indexes
		// between the query's making and its running: make it again.
		if query, args, walked, err = s.listQuery(typ, q, mode); err == nil {
			rows, err = s.r.QueryContext(ctx, query, args...)
		}
	}
	if err != nil {
		return engine.ListPage{}, false, fmt.Errorf("sqlite: list %s: %w", typ, err)
	}
	defer rows.Close()
	var last cursor
	size := 0
	for rows.Next() {
		var item engine.ListItem
		var state string
		var lineage sql.NullString
		var sortValue any
		if err := rows.Scan(&item.ID, &item.Seq, &state, &lineage, &sortValue); err != nil {
			return engine.ListPage{}, false, fmt.Errorf("sqlite: scan list: %w", err)
		}
		// A page ends at its limit, or short of it once it holds
		// Options.MaxPageBytes: the next cursor resumes after its last item.
		if len(page.Items) == limit || s.full(len(page.Items), size) {
			page.Next = encodeCursor(last)
			break
		}
		size += len(state) + len(lineage.String)
		if err := fastjson.Unmarshal([]byte(state), &item.Fields); err != nil {
			return engine.ListPage{}, false, fmt.Errorf("sqlite: decode state of %s/%s: %w", typ, item.ID, err)
		}
		if lineage.Valid {
			if err := fastjson.Unmarshal([]byte(lineage.String), &item.Lineage); err != nil {
				return engine.ListPage{}, false, fmt.Errorf("sqlite: decode lineage of %s/%s: %w", typ, item.ID, err)
			}
		}
		project(&item, q.Fields)
		page.Items = append(page.Items, item)
		last = cursor{Value: sortValue, ID: item.ID, Order: q.Order()}
	}
	if err := rows.Err(); err != nil {
		return engine.ListPage{}, false, fmt.Errorf("sqlite: list %s: %w", typ, err)
	}
	return page, walked, nil
}

// listLimit is the page size of q.
func listLimit(q engine.ListQuery) int {
	if q.Limit <= 0 {
		return 50
	}
	return q.Limit
}

// walkLimit is how many rows a list walks of its sort field's index, at
// least, for the items of a user who sees only their own: past it, their
// own index finds them (see listQuery).
const walkLimit = 1024

// listQuery is the SQL of a list query and its arguments: one row more
// than the page holds, to tell whether another page follows, read as mode
// says (walked is true when it walks an index).
func (s *Store) listQuery(typ string, q engine.ListQuery, mode listMode) (query string, args []any, walked bool, err error) {
	phys := s.physical(typ)
	var where []string
	where = append(where, fmt.Sprintf("type = '%s'", phys))
	expr := func(field string) string { return fmt.Sprintf("json_extract(state, '$.%s')", field) }
	var eqIndexed string  // a field an equality filters, with an index
	var rangeIndex string // the index of a prefix's or search's field
	var keysIndex string  // the index of a search's keys
	idEq := false         // an equality on the id: one row, by the primary key
	for _, f := range q.Filters {
		if f.OnID {
			switch f.Op {
			case "eq":
				idEq = true
				where = append(where, "id = ?")
				args = append(args, f.Value)
			case "prefix":
				where = append(where, "id >= ? AND id < ?")
				args = append(args, f.Value, f.Value+afterPrefix)
			default:
				return "", nil, false, fmt.Errorf("sqlite: unknown operator %q", f.Op)
			}
			continue
		}
		x := expr(f.Field)
		switch f.Op {
		case "eq":
			if eqIndexed == "" && s.hasIndex(phys, f.Field) {
				eqIndexed = f.Field
			}
			// The value as text, and as the number or boolean it may
			// be: an IN list, which the field's index serves (an OR of
			// equalities it does not).
			alts := []string{"?"}
			args = append(args, f.Value)
			if n, err := strconv.ParseFloat(f.Value, 64); err == nil {
				alts = append(alts, "?")
				args = append(args, n)
			}
			switch f.Value {
			case "true", "false":
				alts = append(alts, "?")
				args = append(args, f.Value == "true")
			}
			where = append(where, x+" IN ("+strings.Join(alts, ", ")+")")
		case "prefix":
			if rangeIndex == "" && s.hasIndex(phys, f.Field) {
				rangeIndex = indexName(phys, f.Field)
			}
			where = append(where, x+" >= ? AND "+x+" < ?")
			args = append(args, f.Value, f.Value+afterPrefix)
		case "search":
			// A field not declared searchable has no index of its keys:
			// the function computes them for every instance of the type.
			if name := indexName(phys, f.Field) + searchSuffix; keysIndex == "" && s.hasIndexNamed(name) {
				keysIndex = name
				if rangeIndex == "" {
					rangeIndex = name
				}
			}
			key, k := plait.SearchKey(f.Value), searchExpr(f.Field)
			where = append(where, k+" >= ? AND "+k+" < ?")
			args = append(args, key, key+afterPrefix)
		default:
			return "", nil, false, fmt.Errorf("sqlite: unknown operator %q", f.Op)
		}
	}
	sortIndexed := q.Sort != "" && s.hasIndex(phys, q.Sort)
	walked = mode.walk && q.Owner != "" && sortIndexed && eqIndexed == "" && !idEq && !mode.byKeys
	if q.Owner != "" && !walked {
		where = append(where, "owner = ?")
		args = append(args, q.Owner)
	}
	sortExpr := "NULL"
	if q.Sort != "" {
		sortExpr = expr(q.Sort)
	}
	if q.After != "" {
		c, err := decodeCursor(q.After, q.Order())
		if err != nil {
			return "", nil, false, err
		}
		switch {
		case q.Sort == "" && !q.Desc:
			where = append(where, "id > ?")
			args = append(args, c.ID)
		case q.Sort == "":
			where = append(where, "id < ?")
			args = append(args, c.ID)
		case c.Value == nil && !q.Desc: // nulls come first ascending
			where = append(where, fmt.Sprintf("((%[1]s IS NULL AND id > ?) OR %[1]s IS NOT NULL)", sortExpr))
			args = append(args, c.ID)
		case c.Value == nil:
			where = append(where, fmt.Sprintf("(%s IS NULL AND id < ?)", sortExpr))
			args = append(args, c.ID)
		case !q.Desc:
			where = append(where, fmt.Sprintf("(%s, id) > (?, ?)", sortExpr))
			args = append(args, c.Value, c.ID)
		default:
			where = append(where, fmt.Sprintf("((%[1]s, id) < (?, ?) OR %[1]s IS NULL)", sortExpr))
			args = append(args, c.Value, c.ID)
		}
	}
	if mode.window && mode.upTo != "" {
		if q.Desc {
			where = append(where, "id >= ?")
		} else {
			where = append(where, "id <= ?")
		}
		args = append(args, mode.upTo)
	}
	dir := "ASC"
	if q.Desc {
		dir = "DESC"
	}
	order := "id " + dir
	if q.Sort != "" {
		order = sortExpr + " " + dir + ", id " + dir
	}
	// SQLite's planner reads a type's rows through the primary key and
	// filters and sorts them all, however many there are, rather than use
	// the fields' indexes. So the index is named: an equality's, which
	// narrows the most; else, for a user who sees only their own items,
	// the index by owner, so that the work is bounded by their items, not
	// everyone's (a clerk's fifty orders among half a million); but sorted
	// by an indexed field, that reads and sorts all their items for each
	// page, which costs a user owning most of a large type more than a
	// walk of the field's index: so such a list walks the index first, for
	// at most walkLimit rows, and takes the owner's index only if that
	// found too few (see List); else the sort field's, walked in order and
	// left at the page's end; else a prefix's or a search's. None with an equality on
	// the id, which the primary key finds at once.
	from := "instances"
	index := ""
	switch {
	case idEq:
	case mode.window:
		index = primaryKey
	case mode.byKeys && keysIndex != "":
		index = keysIndex
	case eqIndexed != "":
		index = indexName(phys, eqIndexed)
	case q.Owner != "" && !walked && s.hasIndexNamed(ownerIndex):
		index = ownerIndex
	case sortIndexed:
		index = indexName(phys, q.Sort)
	case rangeIndex != "":
		index = rangeIndex
	}
	if index != "" {
		from = `instances INDEXED BY "` + index + `"`
	}
	limit := listLimit(q) + 1
	if walked {
		inner := fmt.Sprintf("SELECT id, seq, state, lineage, owner, %s AS sort_value FROM %s WHERE %s ORDER BY %s LIMIT %d",
			sortExpr, from, strings.Join(where, " AND "), order, max(walkLimit, 20*limit))
		return fmt.Sprintf("SELECT id, seq, state, lineage, sort_value FROM (%s) WHERE owner = ? ORDER BY sort_value %s, id %s LIMIT %d",
			inner, dir, dir, limit), append(args, q.Owner), true, nil
	}
	return fmt.Sprintf("SELECT id, seq, state, lineage, %s FROM %s WHERE %s ORDER BY %s LIMIT %d",
		sortExpr, from, strings.Join(where, " AND "), order, limit), args, false, nil
}

// project keeps only the requested fields of the state and their lineage.
func project(item *engine.ListItem, fields []string) {
	if fields == nil {
		return
	}
	keep := make(map[string]json.RawMessage, len(fields))
	var lineage map[string]plait.Lineage
	for _, f := range fields {
		if v, ok := item.Fields[f]; ok {
			keep[f] = v
		}
		if l, ok := item.Lineage[f]; ok {
			if lineage == nil {
				lineage = map[string]plait.Lineage{}
			}
			lineage[f] = l
		}
	}
	item.Fields, item.Lineage = keep, lineage
}

// cursor is the sort value and id of the last item of a page.
type cursor struct {
	Value any    `json:"v"`
	ID    string `json:"i"`
	Order string `json:"o,omitempty"` // the list's, see engine.ListQuery.Order
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s, order string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		// Numbers as they were written: a whole number beyond 2^53 (a
		// timestamp in nanoseconds, say) would not survive a float64, and
		// the next page would start from the wrong place.
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err = dec.Decode(&c); err == nil && dec.More() {
			err = errors.New("trailing data")
		}
	}
	if err != nil || c.ID == "" || c.Order != order {
		return c, fmt.Errorf("%w: %q", engine.ErrBadCursor, s)
	}
	switch v := c.Value.(type) {
	case nil, string, bool:
	case json.Number:
		if n, err := v.Int64(); err == nil {
			c.Value = n
		} else if f, err := v.Float64(); err == nil {
			c.Value = f
		} else {
			return c, fmt.Errorf("%w: %q", engine.ErrBadCursor, s)
		}
	default:
		return c, fmt.Errorf("%w: %q", engine.ErrBadCursor, s)
	}
	return c, nil
}
