package outage

import (
	"sync"
	"testing"
	"time"
)

// TestPaceWritesTheFirstThenOnePerInterval: of many lines at once, the
// first few are written, then one per interval, told how many were left
// out.
func TestPaceWritesTheFirstThenOnePerInterval(t *testing.T) {
	p := Pace{First: 3, Interval: 100 * time.Millisecond}
	var mu sync.Mutex
	var got []int64
	write := func(n int64) { mu.Lock(); got = append(got, n); mu.Unlock() }
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { p.Do(write) })
	}
	wg.Wait()
	time.Sleep(120 * time.Millisecond)
	p.Do(write)
	if len(got) != 4 || got[0] != 0 || got[1] != 0 || got[2] != 0 || got[3] != 47 {
		t.Fatalf("lines written with their unwritten counts: %v, want [0 0 0 47]", got)
	}
}
