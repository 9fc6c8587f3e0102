package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// aggregateView is the answer of GET /aggregates/{type}/{id}.
type aggregateView struct {
	Type      string                   `json:"type"`
	ID        string                   `json:"id"`
	Seq       int64                    `json:"seq"`
	State     json.RawMessage          `json:"state"`
	Lineage   map[string]plait.Lineage `json:"lineage,omitempty"`
	UpdatedAt time.Time                `json:"updatedAt"`
}

// instance loads the instance a request names, if it exists and the user
// may see it; otherwise it answers 404 (or 401, or 503) and returns false.
func (s *Server) instance(w http.ResponseWriter, r *http.Request) (engine.Instance, bool) {
	user, p := s.user(r, headerOnly)
	if p != nil {
		writeProblem(w, p)
		return engine.Instance{}, false
	}
	return s.instanceFor(w, r, user)
}

// instanceFor is instance for a user already authenticated.
func (s *Server) instanceFor(w http.ResponseWriter, r *http.Request, user plait.User) (engine.Instance, bool) {
	typ, id := r.PathValue("type"), r.PathValue("id")
	notFound := newProblem(http.StatusNotFound, slugNotFound, fmt.Sprintf("no %s %q", typ, id))
	def, ok := s.defs[typ]
	if !ok {
		notFound.Detail = fmt.Sprintf("no aggregate type %q", typ)
		writeProblem(w, notFound)
		return engine.Instance{}, false
	}
	if !plait.ValidID(id) {
		writeProblem(w, notFound)
		return engine.Instance{}, false
	}
	inst, err := s.e.Load(r.Context(), typ, id)
	if err != nil {
		writeProblem(w, s.failure(r, http.StatusServiceUnavailable, detailStoreDown, "load instance", err, "type", typ, "id", id))
		return engine.Instance{}, false
	}
	if inst.Seq == 0 || !def.Settings().Access.MaySee(user, inst.Owner) {
		writeProblem(w, notFound)
		return engine.Instance{}, false
	}
	inst.Type, inst.ID = typ, id
	return inst, true
}

// getAggregate is GET /aggregates/{type}/{id}: the instance's state, with
// its seq as ETag.
func (s *Server) getAggregate(w http.ResponseWriter, r *http.Request) {
	inst, ok := s.instance(w, r)
	if !ok {
		return
	}
	etag := `"` + itoa64(inst.Seq) + `"`
	w.Header().Set("ETag", etag)
	revalidate := seqVersionsState(s.defs[inst.Type], inst)
	if revalidate {
		// Not no-store: the browser keeps its copy and revalidates it with
		// If-None-Match on each use (no-cache), answered 304 while the seq
		// stands; private keeps it out of shared caches, which may hold
		// one user's data for another.
		w.Header().Set("Cache-Control", "private, no-cache")
	} else {
		w.Header().Set("Cache-Control", "no-store")
	}
	if revalidate && etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeJSON(w, http.StatusOK, aggregateView{
		Type: inst.Type, ID: inst.ID, Seq: inst.Seq, State: inst.State,
		Lineage: inst.Lineage, UpdatedAt: inst.UpdatedAt,
	})
}

// seqVersionsState reports whether inst, of def, has the state its seq
// gave it, so that a client's copy at that seq is still the state and
// If-None-Match may answer 304. A view's state changes under one seq when
// it is rebuilt, and personal data reads as erased once its subject is
// forgotten: those are sent in full, and not stored by caches.
func seqVersionsState(def plait.Definition, inst engine.Instance) bool {
	return !def.Settings().View && !bytes.Contains(inst.State, erasedValue)
}

// erasedValue is how a forgotten personal value stands in a state.
var erasedValue = []byte(`"` + engine.Erased + `"`)

// etagMatch reports whether an If-None-Match header matches etag, with the
// weak comparison RFC 9110 prescribes for it.
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// The bounds of GET /aggregates/{type}/{id}/events.
const (
	defaultEventsLimit = 100
	maxEventsLimit     = 1000
)

// getEvents is GET /aggregates/{type}/{id}/events?after=N&limit=M: the
// instance's events after seq N, in seq order, as a bare array. A page
// with more events after it (limit of them, 100 by default, or fewer when
// the page is cut by its size) has a Link header to the next.
func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) {
	user, p := s.user(r, headerOnly)
	if p != nil {
		writeProblem(w, p)
		return
	}
	// Bad parameters are told before whether the instance exists.
	q, p := query(r)
	if p != nil {
		writeProblem(w, p)
		return
	}
	// An empty after is the first page, and an empty limit the default;
	// a limit over the most a page holds asks for that most, and the Link
	// header tells the next page.
	after, limit := int64(0), defaultEventsLimit
	if v := q.Get("after"); v != "" {
		n, ok := wholeNumber(v)
		if !ok {
			writeProblem(w, badParam("after", "want a seq, a whole number from 0"))
			return
		}
		after = n
	}
	if v := q.Get("limit"); v != "" {
		n, ok := wholeNumber(v)
		if !ok || n < 1 {
			writeProblem(w, badParam("limit", "want a whole number from 1"))
			return
		}
		limit = int(min(n, maxEventsLimit))
	}
	inst, ok := s.instanceFor(w, r, user)
	if !ok {
		return
	}
	evs, err := s.e.Events(r.Context(), inst.Type, inst.ID, after, limit)
	if err != nil {
		writeProblem(w, s.failure(r, http.StatusServiceUnavailable, detailStoreDown, "read events", err, "type", inst.Type, "id", inst.ID))
		return
	}
	if evs == nil {
		evs = []plait.Event{}
	}
	if n := len(evs); n > 0 && (evs[n-1].Seq < inst.Seq || evs[n-1].Seq > inst.Seq && n == limit) {
		// More follow: the instance was further on when loaded, or a full
		// page reached events written since.
		next := r.URL.EscapedPath() + "?" + url.Values{
			"after": {strconv.FormatInt(evs[n-1].Seq, 10)}, "limit": {strconv.Itoa(limit)},
		}.Encode()
		w.Header().Set("Link", "<"+next+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, evs)
}

// The bounds of GET /lists/{type}.
const (
	defaultListLimit = 50
	maxListLimit     = 1000
	// maxListFilters bounds the eq. and prefix. filters of one query,
	// repeated ones included: each is a condition of the store's query,
	// and a thousand of them make SQL deeper than SQLite takes (a 503 and
	// an error in the log that any user could cause at will), or a scan of
	// sealed values that much slower.
	maxListFilters = 100
)

// listPage is the answer of GET /lists/{type}.
type listPage struct {
	Items []listItem `json:"items"`
	Next  *string    `json:"next"`
}

// listItem is one instance of a list: its id and seq, the projected fields
// of its state beside them, and the lineage of those fields if any.
type listItem engine.ListItem

// MarshalJSON writes id and seq first, then the state's fields in name
// order (any named id, seq or lineage is left out), then the lineage.
func (it listItem) MarshalJSON() ([]byte, error) {
	b := []byte(`{"id":`)
	id, err := json.Marshal(it.ID)
	if err != nil {
		return nil, err
	}
	b = append(b, id...)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, it.Seq, 10)
	keys := make([]string, 0, len(it.Fields))
	for k := range it.Fields {
		if k != "id" && k != "seq" && k != "lineage" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		name, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		b = append(b, ',')
		b = append(b, name...)
		b = append(b, ':')
		v := it.Fields[k]
		if len(v) == 0 {
			v = json.RawMessage("null")
		}
		b = append(b, v...)
	}
	if len(it.Lineage) > 0 {
		l, err := json.Marshal(it.Lineage)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"lineage":`...)
		b = append(b, l...)
	}
	return append(b, '}'), nil
}

// getList is GET /lists/{type}: a page of the type's instances.
func (s *Server) getList(w http.ResponseWriter, r *http.Request) {
	user, p := s.user(r, headerOnly)
	if p != nil {
		writeProblem(w, p)
		return
	}
	typ := r.PathValue("type")
	def, ok := s.defs[typ]
	if !ok {
		writeProblem(w, newProblem(http.StatusNotFound, slugNotFound, fmt.Sprintf("no aggregate type %q", typ)))
		return
	}
	q, p := query(r)
	if p != nil {
		writeProblem(w, p)
		return
	}
	lq, err := parseListQuery(q, def.Settings(), s.e.SealedFields(typ))
	if err != nil {
		writeProblem(w, paramProblem(err))
		return
	}
	// Lineage named in fields, of a type that is no view and has no field
	// of that name: there is none to give.
	lineage := wantsLineage(q)
	if q.Has("fields") && lineage && !def.Settings().View && !slices.Contains(def.Settings().Fields, "lineage") {
		writeProblem(w, paramProblem(&paramError{Param: "fields", Code: CodeUnknownFieldName,
			Message: fmt.Sprintf("%s is not a view: its fields have no lineage", typ)}))
		return
	}
	if a := def.Settings().Access; !a.SeesAll(user) {
		if !a.ByOwner() { // none of its instances is the user's to see
			writeJSON(w, http.StatusOK, listPage{Items: []listItem{}})
			return
		}
		lq.Owner = user.ID
	}
	// fields naming lineage and no field of the state: the lineage of
	// them all, which the store gives with the whole item.
	lineageOnly := lineage && lq.Fields != nil && len(lq.Fields) == 0
	if lineageOnly {
		lq.Fields = nil
	}
	page, err := s.e.List(r.Context(), typ, lq)
	if errors.Is(err, engine.ErrBadCursor) {
		writeProblem(w, paramProblem(&paramError{Param: "after", Code: CodeInvalidParam, Message: "not a cursor this list gave"}))
		return
	}
	if err != nil {
		writeProblem(w, s.failure(r, http.StatusServiceUnavailable, detailStoreDown, "list", err, "type", typ))
		return
	}
	out := listPage{Items: make([]listItem, len(page.Items))}
	for i, it := range page.Items {
		if !lineage {
			it.Lineage = nil
		}
		if lineageOnly {
			it.Fields = nil
		}
		out.Items[i] = listItem(it)
	}
	if page.Next != "" {
		out.Next = &page.Next
	}
	writeJSON(w, http.StatusOK, out)
}

// wantsLineage reports whether a list's items carry the lineage of their
// fields: always when the query projects no fields (a whole item, as a
// screen shows it, with the way to its sources), else only when lineage is
// one of the fields asked for, so that a projection gives exactly what it
// names.
func wantsLineage(q url.Values) bool {
	if !q.Has("fields") {
		return true
	}
	for _, f := range strings.Split(q.Get("fields"), ",") {
		if strings.TrimSpace(f) == "lineage" {
			return true
		}
	}
	return false
}

// paramError says what is wrong with one query parameter.
type paramError struct {
	Param   string // the parameter, such as "sort" or "eq.name"
	Code    string // unknown_parameter, unknown_operator, unknown_field, sealed_field or invalid
	Message string
}

func (e *paramError) Error() string { return e.Param + ": " + e.Message }

// The codes of list query problems, beside CodeInvalidParam.
const (
	CodeUnknownParameter = "unknown_parameter"
	CodeUnknownOperator  = "unknown_operator"
	CodeUnknownFieldName = "unknown_field"
	// CodeSealedField refuses a sort on a personal field: it is stored
	// sealed (encrypted), so the store can only order ciphertexts.
	CodeSealedField = "sealed_field"
	// CodeNotSearchable refuses a search of a field its type does not
	// declare searchable: no index of its keys would serve it.
	CodeNotSearchable = "not_searchable"
)

func paramProblem(err error) *Problem {
	var pe *paramError
	if !errors.As(err, &pe) {
		return newProblem(http.StatusBadRequest, slugInvalidRequest, err.Error())
	}
	return newProblem(http.StatusBadRequest, slugInvalidRequest, pe.Error(),
		plait.FieldError{Path: pe.Param, Code: pe.Code, Message: pe.Message})
}

// plainName is what a field name must look like to be queried: the store
// puts it into SQL.
var plainName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// parseListQuery turns the query parameters of GET /lists/{type} into a
// list query over a state with the fields and kinds of settings, of which
// sealed are personal data, stored encrypted:
//
//	eq.F=v      the field F equals v (repeatable; all must hold, at most
//	            maxListFilters filters in all); F id
//	            (unless a field) is the instance's id
//	prefix.F=v  the field F, or id, starts with v
//	search.F=v  the field F starts with v, compared by their
//	            plait.SearchKeys (case and accents aside); F is one the
//	            type declares plait.Searchable, or sealed
//	sort=F, -F  order by F, ascending or descending; id (unless a field)
//	            orders by instance id, the default
//	fields=a,b  return only these fields (and their lineage if lineage
//	            is one of them, see wantsLineage)
//	limit=N     at most N items (default 50, or if empty), and never more
//	            than 1000
//	after=C     the page after the one whose next cursor was C; empty,
//	            the first page
//
// Anything else is an error, as is a field the state does not have, and a
// sort on a sealed field: it would order ciphertexts. A sealed field may
// be projected and filtered on; the engine opens it (see engine.List).
func parseListQuery(q url.Values, settings plait.Settings, sealed []string) (engine.ListQuery, error) {
	fields, kinds := settings.Fields, settings.Kinds
	lq := engine.ListQuery{Limit: defaultListLimit}
	known := func(f string) bool {
		_, found := slices.BinarySearch(fields, f)
		return found && plainName.MatchString(f)
	}
	isSealed := func(param, f string) error {
		if !slices.Contains(sealed, f) {
			return nil
		}
		return &paramError{Param: param, Code: CodeSealedField,
			Message: fmt.Sprintf("%s is personal data, stored encrypted: lists cannot sort on it", f)}
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vals := q[k]
		single := func() (string, error) {
			if len(vals) != 1 {
				return "", &paramError{Param: k, Code: CodeInvalidParam, Message: "give it once"}
			}
			return vals[0], nil
		}
		switch k {
		case "sort":
			v, err := single()
			if err != nil {
				return lq, err
			}
			// Spaces around the field are dropped, as in fields; so sort=+name,
			// whose + a query string reads as a space, is name ascending.
			f, desc := strings.CutPrefix(strings.TrimSpace(v), "-")
			switch {
			case known(f):
				if err := isSealed(k, f); err != nil {
					return lq, err
				}
				if !kinds[f].Comparable() {
					return lq, &paramError{Param: k, Code: CodeInvalidParam, Message: fmt.Sprintf("%s holds %s, which has no order", f, kinds[f].Noun())}
				}
				lq.Sort = f
			case f == "id":
			case f == "":
				return lq, &paramError{Param: k, Code: CodeUnknownFieldName, Message: "no field to sort on: name one (-name for descending), or leave sort out for the ids' order"}
			default:
				return lq, &paramError{Param: k, Code: CodeUnknownFieldName, Message: fmt.Sprintf("no field %q to sort on", f)}
			}
			lq.Desc = desc
		case "fields":
			v, err := single()
			if err != nil {
				return lq, err
			}
			lq.Fields = []string{}
			for _, f := range strings.Split(v, ",") {
				f = strings.TrimSpace(f)
				if (f == "id" || f == "seq" || f == "lineage") && !known(f) {
					continue // every item has id and seq; see wantsLineage
				}
				if f == "" && strings.TrimSpace(v) == "" {
					return lq, &paramError{Param: k, Code: CodeUnknownFieldName, Message: "no field named: name the fields to project, comma-separated, or leave fields out for them all"}
				}
				if !known(f) {
					return lq, &paramError{Param: k, Code: CodeUnknownFieldName, Message: fmt.Sprintf("no field %q", f)}
				}
				if !slices.Contains(lq.Fields, f) {
					lq.Fields = append(lq.Fields, f)
				}
			}
		case "limit":
			v, err := single()
			if err != nil {
				return lq, err
			}
			if v == "" {
				continue // the default
			}
			n, ok := wholeNumber(v)
			if !ok || n < 1 {
				return lq, &paramError{Param: k, Code: CodeInvalidParam, Message: "want a whole number from 1"}
			}
			lq.Limit = int(min(n, maxListLimit)) // the page says if more follow
		case "after":
			v, err := single()
			if err != nil {
				return lq, err
			}
			lq.After = v // empty: the first page
		default:
			op, f, ok := strings.Cut(k, ".")
			if !ok {
				return lq, &paramError{Param: k, Code: CodeUnknownParameter, Message: "not a list parameter (eq.F, prefix.F, search.F, sort, fields, limit, after)"}
			}
			if op != "eq" && op != "prefix" && op != "search" {
				return lq, &paramError{Param: k, Code: CodeUnknownOperator, Message: fmt.Sprintf("no operator %q; want eq, prefix or search", op)}
			}
			if len(lq.Filters)+len(vals) > maxListFilters {
				return lq, &paramError{Param: k, Code: CodeInvalidParam, Message: fmt.Sprintf("at most %d filters in all", maxListFilters)}
			}
			if f == "id" && !known(f) && op == "search" {
				return lq, &paramError{Param: k, Code: CodeNotSearchable,
					Message: "an instance's id is not searchable; prefix.id compares it as it is"}
			}
			if f == "id" && !known(f) { // every item's id, as sort=id
				for _, v := range vals {
					lq.Filters = append(lq.Filters, engine.Filter{Op: op, Value: v, OnID: true})
				}
				continue
			}
			if !known(f) {
				return lq, &paramError{Param: k, Code: CodeUnknownFieldName, Message: fmt.Sprintf("no field %q to filter on", f)}
			}
			if op == "search" && !slices.Contains(settings.Searchable, f) && !slices.Contains(sealed, f) {
				return lq, &paramError{Param: k, Code: CodeNotSearchable,
					Message: fmt.Sprintf("%s is not searchable: its type declares the fields a list searches (plait.Searchable); prefix.%s compares it as it is", f, f)}
			}
			for _, v := range vals {
				if msg := misfit(kinds[f], op, v); msg != "" {
					return lq, &paramError{Param: k, Code: CodeInvalidParam, Message: msg}
				}
				lq.Filters = append(lq.Filters, engine.Filter{Field: f, Op: op, Value: v})
			}
		}
	}
	return lq, nil
}

// misfit says why a filter op with value v cannot apply to a field of kind
// k, or "" when it can: a number is compared with a number, a bool with
// true or false, and a prefix is of text.
func misfit(k plait.Kind, op, v string) string {
	switch {
	case !k.Comparable():
		return fmt.Sprintf("this field holds %s; filters compare text, numbers and true or false", k.Noun())
	case (op == "prefix" || op == "search") && (k == plait.KindNumber || k == plait.KindBool):
		return "a prefix is for text; this field holds " + k.Noun()
	case op == "eq" && k == plait.KindNumber:
		if f, err := strconv.ParseFloat(v, 64); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Sprintf("%q is not a number, which this field holds", v)
		}
	case op == "eq" && k == plait.KindBool && v != "true" && v != "false":
		return fmt.Sprintf("%q is neither true nor false, which this field holds", v)
	}
	return ""
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// wholeNumber reads a number written in decimal digits alone. One too
// large for an int64 reads as the largest: as a limit it asks for the most
// a page holds, as a position it is past every one.
func wholeNumber(v string) (int64, bool) {
	if v == "" || strings.Trim(v, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return math.MaxInt64, true // only a range error is left
	}
	return n, true
}
