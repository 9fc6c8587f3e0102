package engine

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/plaithq/plait"
)

// SealedFields returns the fields of type typ whose values are stored
// sealed: its own personal fields and the personal values of other types
// it copies. The store holds their ciphertexts, so lists cannot sort on
// them; List compares their opened values for eq, prefix and search
// filters. The
// slice is the engine's: the caller reads it only.
func (e *Engine) SealedFields(typ string) []string { return e.sealed[typ] }

// sealedScanBudget bounds how many items one list page with filters on
// sealed fields reads, each opened: the store cannot use an index for
// them, so a page that found too few matches in that many ends short, its
// next cursor where the reading stopped.
const sealedScanBudget = 2048

// sealedScanChunk is how many items one read of such a page asks for.
const sealedScanChunk = 256

// listSealed is List with filters on sealed fields, which the store
// cannot compare: it reads the store's pages under the other filters in
// order, opens the filtered fields and keeps the items that pass, until
// the page is full, the list ends, or it read sealedScanBudget items.
func (e *Engine) listSealed(ctx context.Context, typ string, q ListQuery, sealed []Filter) (ListPage, error) {
	if q.Limit <= 0 {
		q.Limit = 50 // as the stores take it
	}
	for _, f := range sealed {
		if !utf8.ValidString(f.Value) {
			return ListPage{}, nil // no text is invalid UTF-8, as in the stores
		}
	}
	sq := q
	sq.Filters = slices.DeleteFunc(slices.Clone(q.Filters), func(f Filter) bool { return slices.Contains(sealed, f) })
	var added []string // filtered fields fetched for the filter, not asked for
	if q.Fields != nil {
		sq.Fields = slices.Clone(q.Fields)
		for _, f := range sealed {
			if !slices.Contains(sq.Fields, f.Field) {
				sq.Fields = append(sq.Fields, f.Field)
				added = append(added, f.Field)
			}
		}
	}
	var out []ListItem
	for scanned := 0; ; {
		from := sq.After
		sq.Limit = sealedScanChunk
		page, err := e.readSealedPage(ctx, typ, sq)
		if err != nil {
			return ListPage{}, err
		}
		matched := matches(page, sealed)
		if need := q.Limit - len(out); len(matched) > need {
			page, err := e.readSealedUpTo(ctx, typ, sq, from, matched[need-1]+1, need, sealed)
			if err != nil {
				return ListPage{}, err
			}
			for _, it := range page.Items {
				if passes(it, sealed) {
					out = append(out, withoutFields(it, added))
				}
			}
			return ListPage{Items: out, Next: page.Next}, nil
		}
		for _, i := range matched {
			out = append(out, withoutFields(page.Items[i], added))
		}
		scanned += len(page.Items)
		if page.Next == "" || len(out) == q.Limit || scanned >= sealedScanBudget {
			if out == nil {
				out = []ListItem{}
			}
			return ListPage{Items: out, Next: page.Next}, nil
		}
		sq.After = page.Next
	}
}

// readSealedUpTo reads the store's items after from up to the need-th
// match, limit of them as the last read found, for the cursor after it:
// the store gives one at the end of a page only. Writes between the reads
// may bring more matches into that range: the read is made again up to
// the need-th of them, a few times, and then kept with them all, a page a
// little over its limit rather than a match skipped.
func (e *Engine) readSealedUpTo(ctx context.Context, typ string, q ListQuery, from string, limit, need int, sealed []Filter) (ListPage, error) {
	q.After = from
	for try := 0; ; try++ {
		q.Limit = limit
		page, err := e.readSealedPage(ctx, typ, q)
		if err != nil {
			return ListPage{}, err
		}
		matched := matches(page, sealed)
		if len(matched) <= need || try == 3 {
			return page, nil
		}
		limit = matched[need-1] + 1
	}
}

// readSealedPage reads a page of the store and opens its sealed values.
func (e *Engine) readSealedPage(ctx context.Context, typ string, q ListQuery) (ListPage, error) {
	page, err := e.store.List(ctx, typ, q)
	if err = e.durableRead(ctx, err); err != nil {
		return ListPage{}, err
	}
	return page, e.openPage(ctx, &page)
}

// matches returns the indexes of the page's items that pass the filters.
func matches(page ListPage, filters []Filter) []int {
	var matched []int
	for i, it := range page.Items {
		if passes(it, filters) {
			matched = append(matched, i)
		}
	}
	return matched
}

// passes reports whether the item's opened fields pass every filter, as
// the stores compare: text by its bytes, numbers by value, true or false.
func passes(it ListItem, filters []Filter) bool {
	for _, f := range filters {
		var v any
		if json.Unmarshal(it.Fields[f.Field], &v) != nil {
			return false
		}
		switch v := v.(type) {
		case string:
			switch {
			case f.Op == "eq" && v != f.Value,
				f.Op == "prefix" && !strings.HasPrefix(v, f.Value),
				f.Op == "search" && !strings.HasPrefix(plait.SearchKey(v), plait.SearchKey(f.Value)):
				return false
			}
		case float64:
			n, err := strconv.ParseFloat(f.Value, 64)
			if f.Op != "eq" || err != nil || n != v {
				return false
			}
		case bool:
			if f.Op != "eq" || strconv.FormatBool(v) != f.Value {
				return false
			}
		default: // null, absent, a list or an object: nothing compares equal
			return false
		}
	}
	return true
}

// withoutFields returns it without the fields named, nor their lineage.
func withoutFields(it ListItem, fields []string) ListItem {
	for _, f := range fields {
		delete(it.Fields, f)
		delete(it.Lineage, f)
	}
	return it
}
