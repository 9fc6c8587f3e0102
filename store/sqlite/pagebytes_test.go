package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/store/sqlite"
)

// TestPagesAreBoundedInBytes: a read of the feed, of an instance's events or
// of a list stops once it holds MaxPageBytes, returns at least one item,
// and paging on from where it stopped reads everything once, in order.
func TestPagesAreBoundedInBytes(t *testing.T) {
	ctx := context.Background()
	const maxBytes = 8 << 10
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "plait.db"), sqlite.Options{Synchronous: "OFF", MaxPageBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// 60 commands with 1 KiB of data each; every one adds to counter "big"
	// too, so that one instance has a long history.
	at := time.Now().UTC()
	pad := strings.Repeat("x", 1000)
	var batch []*engine.Processed
	for i := 0; i < 60; i++ {
		p := processed(i, at)
		data := json.RawMessage(fmt.Sprintf(`{"by":1,"pad":%q}`, pad))
		p.Outcome.Command.Data = data
		p.Outcome.Events[0].Data = data
		p.Outcome.Events[0].AggregateID = "big"
		p.Outcome.Events[0].Seq = int64(i + 1)
		p.Outcome.Command.AggregateID = "big"
		p.Instance.State = json.RawMessage(fmt.Sprintf(`{"count":%d,"label":%q}`, i, pad))
		p.Instance.ID = fmt.Sprintf("a%02d", i)
		batch = append(batch, p)
	}
	if err := st.Commit(ctx, batch); err != nil {
		t.Fatal(err)
	}

	// The feed: 120 items of over 1 KiB each.
	var pos int64
	pages := 0
	for {
		items, err := st.ReadFeed(ctx, pos, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			break
		}
		pages++
		if len(items) > maxBytes/1000+1 {
			t.Fatalf("a feed page of %d items of over 1 KiB, with %d bytes allowed", len(items), maxBytes)
		}
		for _, it := range items {
			if it.Position != pos+1 {
				t.Fatalf("position %d after %d", it.Position, pos)
			}
			pos = it.Position
		}
	}
	if pos != 120 || pages < 120/(maxBytes/1000+1) {
		t.Fatalf("read %d items in %d pages", pos, pages)
	}

	// One instance's events.
	var seq int64
	for {
		evs, err := st.Events(ctx, "counter", "big", seq, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		if len(evs) > maxBytes/1000+1 {
			t.Fatalf("an events page of %d events", len(evs))
		}
		for _, ev := range evs {
			if ev.Seq != seq+1 {
				t.Fatalf("seq %d after %d", ev.Seq, seq)
			}
			seq = ev.Seq
		}
	}
	if seq != 60 {
		t.Fatalf("read events up to seq %d of 60", seq)
	}

	// A list, whose pages end short of their limit with a cursor.
	seen := map[string]bool{}
	q := engine.ListQuery{Limit: 1000}
	for {
		page, err := st.List(ctx, "counter", q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) > maxBytes/1000+1 || len(page.Items) == 0 {
			t.Fatalf("a list page of %d items", len(page.Items))
		}
		for _, it := range page.Items {
			if seen[it.ID] {
				t.Fatalf("%s listed twice", it.ID)
			}
			seen[it.ID] = true
		}
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	if len(seen) != 60 {
		t.Fatalf("listed %d of 60 instances", len(seen))
	}

	// One item larger than a page still comes, alone.
	st.SetMaxPageBytes(10)
	items, err := st.ReadFeed(ctx, 0, 1000)
	if err != nil || len(items) != 1 {
		t.Fatalf("a page of a tiny budget: %d items, %v", len(items), err)
	}
	st.SetMaxPageBytes(0) // the default: everything fits
	if items, _ = st.ReadFeed(ctx, 0, 1000); len(items) != 120 {
		t.Fatalf("the default budget read %d of 120 items", len(items))
	}
}
