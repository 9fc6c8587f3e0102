package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/plaithq/plait/store/sqlite"
)

// TestKeysSurviveAFirstCallerThatWentAway: the first use of the keys
// creates their table; a first caller whose context has ended (a request
// whose client went away) gets its error, and the keys work for the next
// caller, as after any failure of that first use.
func TestKeysSurviveAFirstCallerThatWentAway(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "keys.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := st.Key(gone, "s1", true); err == nil {
		t.Fatal("a key made with a context that had ended")
	}
	ctx := context.Background()
	key, ok, err := st.Key(ctx, "s1", true)
	if err != nil || !ok || len(key) != 32 {
		t.Fatalf("the next caller's key: %x %v %v", key, ok, err)
	}
	again, ok, err := st.Key(ctx, "s1", false)
	if err != nil || !ok || !bytes.Equal(again, key) {
		t.Fatalf("the key read back: %x %v %v", again, ok, err)
	}
	if err := st.Destroy(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.Key(ctx, "s1", false); err != nil || ok {
		t.Fatalf("after destroy: %v %v", ok, err)
	}
}

// TestDestroyWaitsForReadersWithoutHoldingCommits: while a reader holds an
// older snapshot (a backup running), Destroy waits to empty the log of
// the key's former pages, and commits go on meanwhile; once the reader is
// done, Destroy returns.
func TestDestroyWaitsForReadersWithoutHoldingCommits(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.Key(ctx, "gone", true); err != nil {
		t.Fatal(err)
	}
	release := holdSnapshot(t, path)
	destroyed := make(chan error, 1)
	go func() { destroyed <- st.Destroy(ctx, "gone") }()
	time.Sleep(200 * time.Millisecond) // Destroy is waiting for the reader
	for i := range 5 {
		start := time.Now()
		if _, _, err := st.Key(ctx, fmt.Sprintf("new%d", i), true); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("a key made while Destroy waited for a reader took %v", took)
		}
	}
	select {
	case err := <-destroyed:
		t.Fatalf("Destroy returned (%v) while the reader held its snapshot", err)
	default:
	}
	release()
	select {
	case err := <-destroyed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Destroy did not return once the reader was done")
	}
	if _, ok, _ := st.Key(ctx, "gone", false); ok {
		t.Error("the key is still there")
	}
}

// holdSnapshot opens a reader of the store at path that holds a snapshot,
// as a backup running does, until release is called (or the test ends).
func holdSnapshot(t *testing.T, path string) (release func()) {
	t.Helper()
	reader, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	tx, err := reader.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM subject_keys`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return func() { tx.Rollback() }
}
