// Package pgtest gives tests a PostgreSQL server to talk to: the one
// scripts/ensure-postgres installs and starts, or the one
// PLAIT_POSTGRES_URL names, and a schema of their own on it. A test that
// needs PostgreSQL fails, never skips, when the server cannot be reached.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the server the tests use unless PLAIT_POSTGRES_URL names
// another.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// URL returns the test server's connection string, failing t when the
// server cannot be reached.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("PLAIT_POSTGRES_URL")
	if url == "" {
		url = DefaultURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable at %s: %v\n"+
			"Run scripts/ensure-postgres (as root) to install and start it with database \"test\", "+
			"or set PLAIT_POSTGRES_URL to a server of your own.", url, err)
	}
	return url
}

// FreshSchema names a schema of t's own, for a store to create, and drops
// it when t ends.
func FreshSchema(t testing.TB, url string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "plait_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}
