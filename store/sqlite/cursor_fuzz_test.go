package sqlite

import (
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"testing"

	"github.com/plaithq/plait/engine"
)

// FuzzDecodeCursor feeds arbitrary strings as the after= cursor of a list:
// decodeCursor refuses them with engine.ErrBadCursor (a cursor of another
// order included) or returns a cursor of the list's order that encodes
// back to one that decodes the same, and List, whatever the
// sort, answers a page or ErrBadCursor, never another error (a cursor's
// values go into SQL only as bound parameters).
func FuzzDecodeCursor(f *testing.F) {
	for _, s := range []string{
		encodeCursor(cursor{Value: "a", ID: "x"}), encodeCursor(cursor{Value: 3.5, ID: "x"}), encodeCursor(cursor{Value: true, ID: "y"}),
		encodeCursor(cursor{ID: "z"}), encodeCursor(cursor{Value: 2.0, ID: "x", Order: "count"}), encodeCursor(cursor{Value: 1.0, ID: "x", Order: "-count"}),
		encodeCursor(cursor{ID: "z", Order: "-"}), "", "!!!", base64.RawURLEncoding.EncodeToString([]byte(`{"v":{"a":1},"i":"x"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":[1],"i":"x"}`)), base64.RawURLEncoding.EncodeToString([]byte(`{"i":""}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":"') OR 1=1 --","i":"x"}`)), base64.StdEncoding.EncodeToString([]byte(`{"i":"x"}`)),
	} {
		f.Add(s, uint8(0))
	}
	st, err := Open(context.Background(), filepath.Join(f.TempDir(), "cursor.db"), Options{Synchronous: "OFF"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	f.Fuzz(func(t *testing.T, s string, mode uint8) {
		q := engine.ListQuery{After: s, Limit: 5, Desc: mode&1 == 1}
		if mode&2 == 2 {
			q.Sort = "count"
		}
		c, err := decodeCursor(s, q.Order())
		if err != nil {
			if !errors.Is(err, engine.ErrBadCursor) {
				t.Fatalf("%q: %v", s, err)
			}
		} else {
			if c.ID == "" {
				t.Fatalf("%q: a cursor without an id", s)
			}
			c2, err := decodeCursor(encodeCursor(c), q.Order())
			if err != nil || !sameCursor(c, c2) {
				t.Fatalf("%q: %+v encodes to a cursor that decodes as %+v, %v", s, c, c2, err)
			}
		}
		if _, err := st.List(context.Background(), "counter", q); err != nil && !errors.Is(err, engine.ErrBadCursor) {
			t.Fatalf("list after %q (%+v): %v", s, q, err)
		}
	})
}

// sameCursor compares two cursors, their numbers by value: 2.0 may come
// back as the whole number 2, which SQLite compares as equal.
func sameCursor(a, b cursor) bool {
	num := func(v any) (float64, bool) {
		switch n := v.(type) {
		case int64:
			return float64(n), true
		case float64:
			return n, true
		}
		return 0, false
	}
	if x, ok := num(a.Value); ok {
		y, ok := num(b.Value)
		a.Value, b.Value = nil, nil
		return ok && x == y && a == b
	}
	return a == b
}
