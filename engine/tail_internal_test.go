package engine

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/plaithq/plait"
)

// heldBytes is the data the tail's ring still references.
func heldBytes(t *tail) int {
	n := 0
	for _, it := range t.ring {
		if it.Event != nil {
			n += len(it.Event.Data)
		}
		if it.Outcome != nil {
			n += len(it.Outcome.Command.Data)
		}
	}
	return n
}

func bigItem(pos int64, size int) Item {
	data := json.RawMessage(`"` + string(bytes.Repeat([]byte("x"), size-2)) + `"`)
	if pos%2 == 0 {
		return Item{Position: pos, Event: &plait.Event{Position: pos, Data: data}}
	}
	return Item{Position: pos, Outcome: &plait.Outcome{Position: pos, Command: plait.Command{Data: data}}}
}

// TestTailHoldsAtMostItsBytes: large items do not stay in memory until as
// many newer items as the ring holds push them out: past maxBytes the
// oldest are dropped, and read from the store, while the newest are still
// read from memory.
func TestTailHoldsAtMostItsBytes(t *testing.T) {
	const budget = 1 << 20
	tl := newTail(0, 1024)
	tl.maxBytes = budget
	for p := int64(1); p <= 200; p++ {
		tl.append([]Item{bigItem(p, 100<<10)})
	}
	if held := heldBytes(tl); held > budget {
		t.Fatalf("the tail holds %d bytes of data, more than its %d", held, budget)
	}
	if tl.bytes > budget || tl.bytes < 0 {
		t.Fatalf("the tail counts %d bytes, want at most %d", tl.bytes, budget)
	}
	if _, ok := tl.read(0, 10); ok {
		t.Fatal("the oldest items are still read from memory")
	}
	items, ok := tl.read(198, 10)
	if !ok || len(items) != 2 || items[0].Position != 199 || items[1].Position != 200 {
		t.Fatalf("read after 198 = %d items, %v; want 199 and 200 from memory", len(items), ok)
	}
	// Small items fill the ring by count as before, and the large ones
	// leave it.
	for p := int64(201); p <= 3000; p++ {
		tl.append([]Item{bigItem(p, 10)})
	}
	if got, want := tl.first, int64(3000-1024+1); got != want {
		t.Fatalf("first = %d, want %d: the ring holds its count of small items", got, want)
	}
	if want := 1024 * (10 + itemOverhead); tl.bytes != want {
		t.Fatalf("the tail counts %d bytes, want %d", tl.bytes, want)
	}
}

// TestTailSkipsGaps: positions no item has are passed over, and what the
// ring held before the gap is let go.
func TestTailSkipsGaps(t *testing.T) {
	tl := newTail(0, 8)
	tl.maxBytes = 1 << 20
	tl.append([]Item{bigItem(1, 100), bigItem(2, 100)})
	tl.append([]Item{bigItem(100, 100)})
	if tl.first != 93 || tl.bytes != 100+itemOverhead || heldBytes(tl) != 100 {
		t.Fatalf("after a gap: first %d, %d bytes counted, %d held; want 93, %d, 100", tl.first, tl.bytes, heldBytes(tl), 100+itemOverhead)
	}
	tl.append([]Item{bigItem(103, 100)})
	if tl.first != 96 || tl.bytes != 2*(100+itemOverhead) {
		t.Fatalf("after a short gap: first %d, %d bytes; want 96, %d", tl.first, tl.bytes, 2*(100+itemOverhead))
	}
	items, ok := tl.read(95, 10)
	if !ok || len(items) != 2 || items[0].Position != 100 || items[1].Position != 103 {
		t.Fatalf("read after 95 = %+v, %v; want the items at 100 and 103 alone", items, ok)
	}
}
