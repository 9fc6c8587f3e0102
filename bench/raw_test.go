package bench

import (
	"context"
	"database/sql"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/plaithq/plait/store/sqlite"
)

// TestRawSchemaIsTheStoresEventsTable keeps the baseline honest: its rows
// must be the rows, constraints and indexes of the store's events table.
func TestRawSchemaIsTheStoresEventsTable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plait.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var store []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		store = append(store, normalSQL(s))
	}
	var raw []string
	for _, stmt := range strings.Split(rawSchema, ";") {
		if s := normalSQL(stmt); s != "" {
			raw = append(raw, s)
		}
	}
	if strings.Join(store, ";\n") != strings.Join(raw, ";\n") {
		t.Fatalf("the store's events table:\n%s\n\nthe baseline's:\n%s", strings.Join(store, ";\n"), strings.Join(raw, ";\n"))
	}
}

var spaces = regexp.MustCompile(`\s+`)

// normalSQL is a statement with its spaces collapsed and IF NOT EXISTS,
// which sqlite_master does not keep, left out.
func normalSQL(s string) string {
	s = strings.ReplaceAll(s, "IF NOT EXISTS ", "")
	s = spaces.ReplaceAllString(strings.TrimSpace(s), " ")
	s = strings.ReplaceAll(s, "( ", "(")
	return strings.ReplaceAll(s, " )", ")")
}
