package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// TestALogGrownPastItsLimitIsCutBack: a write-ahead log that grew while a
// reader kept it from being folded back (as a long backup does) is cut
// back to the store's limit once it is, rather than keeping its largest
// size on the disk for good.
func TestALogGrownPastItsLimitIsCutBack(t *testing.T) {
	ctx := context.Background()
	st, _, path := openLive(t)
	defer st.Close()
	if limit, err := st.WriterPragma(ctx, "journal_size_limit"); err != nil || limit != 64<<20 {
		t.Fatalf("journal_size_limit is %d (%v), want 64 MiB", limit, err)
	}
	// A lower limit, for the log to grow past it quickly.
	const limit = 1 << 20
	if _, err := st.WriterPragma(ctx, fmt.Sprintf("journal_size_limit = %d", limit)); err != nil {
		t.Fatal(err)
	}
	walSize := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	n := 0
	commit := func() {
		t.Helper()
		n++
		if _, _, err := st.Key(ctx, fmt.Sprintf("subject-%d", n), true); err != nil {
			t.Fatal(err)
		}
	}
	commit() // the table of keys, which the reader reads
	release := holdSnapshot(t, path)
	for walSize() < 3*limit {
		commit()
	}
	grown := walSize()
	release()
	// The automatic checkpoints of the commits that follow fold the log
	// back, and the commit after one that did cuts it.
	for range 2000 {
		if walSize() <= limit {
			return
		}
		commit()
	}
	t.Errorf("the log grew to %d bytes, and is %d 2,000 commits after its reader went, want at most %d", grown, walSize(), limit)
}
