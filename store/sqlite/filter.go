package sqlite

import (
	"sync"

	"github.com/bits-and-blooms/bloom/v3"
)

// commandFilter is an approximate set of the ids of the commands the store
// holds, kept in memory so that the dedup lookup of a new command, which
// nearly every command is, costs no read: an id the filter has never seen
// is certainly new. The filter answers "maybe" for every id it holds and
// for under one other id in a hundred, which are then read from the file.
//
// It never forgets an id, so it may not miss one: ids go in before the
// transaction that stores them begins (a transaction that then fails
// leaves only a harmless "maybe"), and the ids stored before the store was
// opened are read into it in the background; until they are all in, it
// answers nothing and every lookup reads.
//
// It grows in layers: when the newest layer holds as many ids as it was
// sized for, a layer twice as large with half the false positive rate is
// added, so the rate stays under 1% however long the log grows, at about
// 1.4 to 3 bytes per command.
type commandFilter struct {
	mu     sync.Mutex
	ready  bool
	layers []*bloom.BloomFilter
	size   uint    // the number of ids the newest layer is sized for
	room   uint    // how many more it takes before the next layer
	rate   float64 // the false positive rate of the newest layer
}

// firstLayerRate is the false positive rate of the first layer; the
// layers' rates, halving, sum to less than twice that.
const firstLayerRate = 0.005

// minFilterSize is the size of the first layer for a small log: 1.4 MB.
const minFilterSize = 1 << 20

// newCommandFilter returns an empty filter, not ready, whose first layer
// is sized for size ids (at least minLayer).
func newCommandFilter(size, minLayer uint) *commandFilter {
	f := &commandFilter{rate: 2 * firstLayerRate}
	f.grow(max(size, minLayer, 1))
	return f
}

// grow adds a layer sized for size ids.
func (f *commandFilter) grow(size uint) {
	f.rate /= 2
	f.layers = append(f.layers, bloom.NewWithEstimates(size, f.rate))
	f.size, f.room = size, size
}

// add records ids.
func (f *commandFilter) add(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if f.room == 0 {
			f.grow(2 * f.size)
		}
		f.layers[len(f.layers)-1].AddString(id)
		f.room--
	}
}

// loaded marks the filter ready: it holds every id the store holds.
func (f *commandFilter) loaded() {
	f.mu.Lock()
	f.ready = true
	f.mu.Unlock()
}

// maybeHeld returns the ids among ids the store may hold; the others are
// certainly new. ok is false while the filter is not ready: then it knows
// nothing, and every id must be looked up.
func (f *commandFilter) maybeHeld(ids []string) (maybe []string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready {
		return nil, false
	}
	for _, id := range ids {
		for _, l := range f.layers {
			if l.TestString(id) {
				maybe = append(maybe, id)
				break
			}
		}
	}
	return maybe, true
}
