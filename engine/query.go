package engine

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/plaithq/plait"
)

// Filter is one condition of a list query: the state field Field equals
// Value (Op "eq"), starts with it (Op "prefix"), or starts with it as
// their plait.SearchKeys compare (Op "search", on a field the type
// declares plait.Searchable, whose keys the store indexes, or a sealed
// one); with OnID, the instance's id equals or starts with Value, and
// Field is not read.
type Filter struct {
	Field string
	Op    string
	Value string
	OnID  bool
}

// ListQuery selects, orders and projects instances of one aggregate type.
type ListQuery struct {
	Filters []Filter
	Sort    string // a state field; "" orders by id
	Desc    bool
	Fields  []string // the state fields to return; nil returns the whole state
	Limit   int
	After   string // the cursor of the previous page's last item
	// Owner restricts the list to instances owned by this user; "" lists all.
	Owner string
}

// ListItem is one instance in a list page.
type ListItem struct {
	ID      string
	Seq     int64
	Fields  map[string]json.RawMessage
	Lineage map[string]plait.Lineage
}

// ListPage is one page of a list; Next is the cursor of the next page, ""
// when this page is the last.
type ListPage struct {
	Items []ListItem
	Next  string
}

// Queries read materialized state and history.
type Queries interface {
	// Events returns the instance's events with seq after after, in seq
	// order, at most limit.
	Events(ctx context.Context, typ, id string, after int64, limit int) ([]plait.Event, error)
	// List runs a list query. Fields named in filters, sort and projection
	// have been checked by the caller to be plain names. A cursor that does
	// not decode returns an error wrapping ErrBadCursor.
	List(ctx context.Context, typ string, q ListQuery) (ListPage, error)
}

// ErrBadCursor is returned by List for a cursor that does not decode, or
// that a list in another order gave.
var ErrBadCursor = errors.New("engine: bad list cursor")

// Order names the order of q's items, "-" first when descending: a store
// keeps it in the cursors it gives, and refuses a cursor of another order,
// whose position would mean nothing in this one.
func (q ListQuery) Order() string {
	if q.Desc {
		return "-" + q.Sort
	}
	return q.Sort
}
