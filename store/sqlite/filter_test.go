package sqlite

import (
	"fmt"
	"testing"
)

func TestCommandFilterGrowsAndMissesNothing(t *testing.T) {
	f := newCommandFilter(16, 16)
	ids := make([]string, 20000)
	for i := range ids {
		ids[i] = fmt.Sprintf("01JCMD%08d", i)
	}
	f.add(ids[:10000]...)
	if _, ok := f.maybeHeld(ids); ok {
		t.Fatal("a filter still loading answered")
	}
	f.loaded()
	f.add(ids[10000:]...)
	if len(f.layers) < 10 {
		t.Errorf("%d layers for 20,000 ids from a first layer of 16", len(f.layers))
	}
	maybe, ok := f.maybeHeld(ids)
	if !ok || len(maybe) != len(ids) {
		t.Fatalf("%d of %d added ids may be held (ready %v): the filter missed some", len(maybe), len(ids), ok)
	}
	fresh := make([]string, 20000)
	for i := range fresh {
		fresh[i] = fmt.Sprintf("01JNEW%08d", i)
	}
	maybe, _ = f.maybeHeld(fresh)
	rate := float64(len(maybe)) / float64(len(fresh))
	if rate > 0.015 {
		t.Errorf("%.2f%% of new ids may be held, want about 1%%", 100*rate)
	}
	t.Logf("%d layers, %.2f%% false positives", len(f.layers), 100*rate)
}
