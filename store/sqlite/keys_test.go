package sqlite_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

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
