package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// A staged copy is written without waiting for the disk, and the writer
// connection is back at the store's synchronous setting afterwards, so the
// engine's commits still wait for it.
func TestCopyWritesLeaveTheWriterAtItsSynchronousSetting(t *testing.T) {
	ctx := context.Background()
	for _, sync := range []struct {
		name string
		want int64
	}{{"FULL", 2}, {"EXTRA", 3}, {"NORMAL", 1}} {
		s, err := Open(ctx, filepath.Join(t.TempDir(), "copy.db"), Options{Synchronous: sync.name})
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.StageView(ctx, "list", plait.Settings{Indexes: []string{"name"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Write(ctx, []engine.Instance{{Type: "list", ID: "a", Seq: 1, State: []byte(`{"name":"x"}`), UpdatedAt: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Swap(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Cleanup(ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := s.WriterPragma(ctx, "synchronous"); err != nil || got != sync.want {
			t.Errorf("%s: synchronous is %d (%v) after a copy, want %d", sync.name, got, err, sync.want)
		}
		page, err := s.List(ctx, "list", engine.ListQuery{Sort: "name"})
		if err != nil || len(page.Items) != 1 {
			t.Errorf("%s: the swapped copy lists %v, %v", sync.name, page.Items, err)
		}
		s.Close()
	}
}
