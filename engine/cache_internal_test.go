package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

// TestPartitionCacheHoldsAtMostItsBytes: large states do not stay cached
// until CacheSize instances push them out; the cache drops what the store
// has once it would weigh more than CacheBytes, and counts what it holds
// exactly, an instance decided again replacing its earlier record.
func TestPartitionCacheHoldsAtMostItsBytes(t *testing.T) {
	const budget = 1 << 20
	p := newPartition(&Engine{opts: Options{CacheSize: 4096, CacheBytes: budget}})
	state := json.RawMessage(`"` + string(bytes.Repeat([]byte("x"), 100<<10)) + `"`)
	held := func() int {
		n := 0
		for _, c := range p.cache {
			n += len(c.inst.State)
		}
		return n
	}
	for b := 0; b < 50; b++ {
		overlay := map[instKey]Instance{}
		for i := 0; i < 3; i++ {
			k := instKey{"order", fmt.Sprintf("o%d-%d", b, i)}
			overlay[k] = Instance{Type: k.typ, ID: k.id, State: state}
		}
		n := p.keep(overlay)
		p.completed.Store(n) // its commit is done
		if n := held(); n > budget {
			t.Fatalf("after batch %d the cache holds %d bytes of state, more than its %d", b, n, budget)
		}
	}
	checkCounted(t, p)
	// The same instance decided again, in a cache that stays under its
	// bytes (were it dropped, a miscount would be forgotten): counted
	// once, at its latest state's weight.
	p = newPartition(&Engine{opts: Options{CacheSize: 4096, CacheBytes: budget}})
	k := instKey{"order", "hot"}
	for i := 0; i < 100; i++ {
		p.completed.Store(p.keep(map[instKey]Instance{k: {Type: k.typ, ID: k.id, State: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}}))
	}
	if _, ok := p.cache[k]; !ok || len(p.cache) != 1 {
		t.Fatalf("a hot instance: cached %v, %d instances", ok, len(p.cache))
	}
	checkCounted(t, p)
}

// checkCounted fails the test unless the partition counts exactly what
// its cache holds.
func checkCounted(t *testing.T, p *partition) {
	t.Helper()
	want := 0
	for _, c := range p.cache {
		want += instanceBytes(c.inst)
	}
	if p.cacheBytes != want {
		t.Fatalf("the cache counts %d bytes, holds %d", p.cacheBytes, want)
	}
}

// TestAFullCacheKeepsWhatIsStillCommitting: a cache over its caps drops
// the records of the batches whose commit is done, which the store has,
// and keeps those of the batches still committing, which it has not yet:
// dropped, the next command of such an instance would be decided against
// an older state. It does so at once, without waiting for those commits.
func TestAFullCacheKeepsWhatIsStillCommitting(t *testing.T) {
	p := newPartition(&Engine{opts: Options{CacheSize: 4096, CacheBytes: 1}}) // every batch is over
	keep := func(ids ...string) int64 {
		overlay := map[instKey]Instance{}
		for _, id := range ids {
			overlay[instKey{"counter", id}] = Instance{Type: "counter", ID: id, State: json.RawMessage(`{"count":1}`)}
		}
		return p.keep(overlay)
	}
	cachedIDs := func() map[string]int64 {
		ids := map[string]int64{}
		for k, c := range p.cache {
			ids[k.id] = c.batch
		}
		return ids
	}
	first := keep("a", "b")
	if second := keep("c"); second != first+1 {
		t.Fatalf("batches numbered %d then %d", first, second)
	}
	// Neither batch is committed: both stay, over the caps.
	if got := cachedIDs(); len(got) != 3 || got["a"] != first || got["c"] != first+1 {
		t.Fatalf("with two batches committing, the cache holds %v", got)
	}
	checkCounted(t, p)
	// The first is committed: its records go, the second's stay, and b
	// decided again is the third batch's.
	p.completed.Store(first)
	third := keep("b")
	if got := cachedIDs(); len(got) != 2 || got["c"] != first+1 || got["b"] != third {
		t.Fatalf("with the first batch committed, the cache holds %v", got)
	}
	checkCounted(t, p)
	p.completed.Store(third)
	keep("d")
	if got := cachedIDs(); len(got) != 1 || got["d"] == 0 {
		t.Fatalf("with every earlier batch committed, the cache holds %v", got)
	}
	checkCounted(t, p)
}
