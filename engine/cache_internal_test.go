package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

// TestPartitionCacheHoldsAtMostItsBytes: large states do not stay cached
// until CacheSize instances push them out; the cache is dropped once it
// would weigh more than CacheBytes, and counts what it holds exactly, an
// instance decided again replacing its earlier record.
func TestPartitionCacheHoldsAtMostItsBytes(t *testing.T) {
	const budget = 1 << 20
	p := newPartition(&Engine{opts: Options{CacheSize: 4096, CacheBytes: budget}})
	state := json.RawMessage(`"` + string(bytes.Repeat([]byte("x"), 100<<10)) + `"`)
	held := func() int {
		n := 0
		for _, inst := range p.cache {
			n += len(inst.State)
		}
		return n
	}
	for b := 0; b < 50; b++ {
		overlay := map[instKey]Instance{}
		for i := 0; i < 3; i++ {
			k := instKey{"order", fmt.Sprintf("o%d-%d", b, i)}
			overlay[k] = Instance{Type: k.typ, ID: k.id, State: state}
		}
		p.keep(overlay)
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
		p.keep(map[instKey]Instance{k: {Type: k.typ, ID: k.id, State: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}})
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
	for _, inst := range p.cache {
		want += instanceBytes(inst)
	}
	if p.cacheBytes != want {
		t.Fatalf("the cache counts %d bytes, holds %d", p.cacheBytes, want)
	}
}
