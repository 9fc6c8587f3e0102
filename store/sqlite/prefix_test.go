package sqlite

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// A prefix finds every string that starts with it, those that go on with
// the largest code point (U+10FFFF) too, with the field's index and without.
func TestPrefixFindsNamesGoingOnWithTheLargestCodePoint(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "prefix.db"), Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	type person struct {
		Name  string `json:"name"`
		Other string `json:"other"`
	}
	if err := s.EnsureIndexes(ctx, []plait.Definition{plait.NewAggregate("person", plait.Indexed[person]("name"))}); err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "ab", "a\U0010FFFF", "a\U0010FFFFb", "b", "\U0010FFFF", "\U0010FFFF\U0010FFFF", "é", "é\U0010FFFF", "e\u0301"}
	for i, n := range names {
		state := `{"name":"` + n + `","other":"` + n + `"}`
		if _, err := s.w.ExecContext(ctx, `INSERT INTO instances(type, id, seq, state, owner, updated_at) VALUES('person', ?, 1, ?, 'u', 'x')`,
			string(rune('a'+i)), state); err != nil {
			t.Fatal(err)
		}
	}
	for _, field := range []string{"name", "other"} { // indexed, not indexed
		for _, p := range []string{"", "a", "a\U0010FFFF", "\U0010FFFF", "é", "e"} {
			page, err := s.List(ctx, "person", engine.ListQuery{Filters: []engine.Filter{{Field: field, Op: "prefix", Value: p}}, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for _, it := range page.Items {
				got = append(got, strings.Trim(string(it.Fields[field]), `"`))
			}
			for _, n := range names {
				if strings.HasPrefix(n, p) {
					want = append(want, n)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("prefix.%s=%+q: got %+q, want %+q", field, p, got, want)
			}
		}
	}
}

// A filter's value that is not UTF-8 matches nothing, as in store/postgres:
// not the text whose bytes start with a piece of one of its characters.
func TestAFilterOfInvalidUTF8MatchesNothing(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "invalid.db"), Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.w.ExecContext(ctx, `INSERT INTO instances(type, id, seq, state, owner, updated_at) VALUES('person', 'a', 1, '{"name":"中文"}', 'u', 'x')`); err != nil {
		t.Fatal(err)
	}
	for _, f := range []engine.Filter{{Field: "name", Op: "prefix", Value: "\xe4"}, {Field: "name", Op: "prefix", Value: "中\xe6"}, {Field: "name", Op: "eq", Value: "中文\xff"}} {
		page, err := s.List(ctx, "person", engine.ListQuery{Filters: []engine.Filter{f}})
		if err != nil || len(page.Items) != 0 {
			t.Errorf("%s.%s=%+q: %d items, %v; want none", f.Op, f.Field, f.Value, len(page.Items), err)
		}
	}
}
