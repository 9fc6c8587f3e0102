package engine

import (
	"context"
	"fmt"
	"sync"
)

// tail keeps the most recent feed items in a ring so that subscribers that
// keep up read them from memory; one that falls behind the ring reads the
// store instead. Subscribers hold only their position, so a slow one costs
// no memory.
//
// The ring holds at most len(ring) items and, when maxBytes is set, items
// of at most about maxBytes (see itemBytes): without the byte cap, a run of
// large commands would stay in memory until as many newer items pushed them
// out, however large they are.
type tail struct {
	mu       sync.RWMutex
	ring     []Item
	sizes    []int // itemBytes of each slot's item, 0 for a slot dropped
	bytes    int   // the sum of sizes: what the items held weigh
	maxBytes int   // the most bytes held; 0 caps only the number of items
	first    int64 // lowest position held
	head     int64 // highest position published
	wake     *broadcast
}

func newTail(head int64, size int) *tail {
	return &tail{ring: make([]Item, size), sizes: make([]int, size), first: head + 1, head: head, wake: newBroadcast()}
}

// itemOverhead approximates what an item weighs besides its data: the
// structs, ids, names and timestamps of its event or outcome.
const itemOverhead = 256

// itemBytes approximates the memory an item holds: its event's data, or
// its outcome's command data and errors, plus itemOverhead.
func itemBytes(it Item) int {
	n := itemOverhead
	if it.Event != nil {
		n += len(it.Event.Data)
	}
	if it.Outcome != nil {
		n += len(it.Outcome.Command.Data) + len(it.Outcome.Errors)*itemOverhead
	}
	return n
}

// start makes head, the store's head when Run starts, the published head,
// and wakes whoever read the feed before.
func (t *tail) start(head int64) {
	t.mu.Lock()
	clear(t.ring)
	clear(t.sizes)
	t.bytes = 0
	t.first, t.head = head+1, head
	t.mu.Unlock()
	t.wake.fire()
}

func (t *tail) append(items []Item) {
	if len(items) == 0 {
		return
	}
	t.mu.Lock()
	size := int64(len(t.ring))
	for _, it := range items {
		// Drop what the new item's slot, or the ones a gap in positions
		// skips, still hold: everything before lo.
		if lo := it.Position - size + 1; lo > t.first {
			if lo-t.first >= size {
				clear(t.ring)
				clear(t.sizes)
				t.bytes, t.first = 0, lo
			}
			for t.first < lo {
				t.dropFirst()
			}
		}
		slot := it.Position % size
		t.ring[slot] = it
		t.sizes[slot] = itemBytes(it)
		t.bytes += t.sizes[slot]
		t.head = it.Position
		for t.maxBytes > 0 && t.bytes > t.maxBytes && t.first <= t.head {
			t.dropFirst()
		}
	}
	t.mu.Unlock()
	t.wake.fire()
}

// dropFirst lets go of the item at the lowest position held, which is then
// read from the store; t.mu is held.
func (t *tail) dropFirst() {
	slot := t.first % int64(len(t.ring))
	t.bytes -= t.sizes[slot]
	t.ring[slot], t.sizes[slot] = Item{}, 0
	t.first++
}

func (t *tail) headPos() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.head
}

// read returns up to limit items after after; ok is false when after lies
// before the ring and the store must be read.
func (t *tail) read(after int64, limit int) (items []Item, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if after+1 < t.first {
		return nil, false
	}
	for p := after + 1; p <= t.head && len(items) < limit; p++ {
		if it := t.ring[p%int64(len(t.ring))]; it.Position == p { // not a position no item has
			items = append(items, it)
		}
	}
	return items, true
}

// ReadFeed returns up to limit feed items after position after, from memory
// when they are recent and from the store otherwise, with personal fields
// opened (erased when their subject was forgotten).
func (e *Engine) ReadFeed(ctx context.Context, after int64, limit int) ([]Item, error) {
	items, err := e.readFeed(ctx, after, limit)
	if err != nil || e.shred == nil {
		return items, err
	}
	return e.shred.openItems(ctx, items)
}

// readFeed is ReadFeed with personal fields sealed, as reactors read it:
// they copy sealed values as they are.
func (e *Engine) readFeed(ctx context.Context, after int64, limit int) ([]Item, error) {
	if items, ok := e.tail.read(after, limit); ok {
		return items, nil
	}
	// The store may hold batches written and not yet durable, or not yet
	// published: a reader never gets ahead of the published head.
	head := e.tail.headPos()
	items, err := e.store.ReadFeed(ctx, after, limit)
	for i, it := range items {
		if it.Position > head {
			return items[:i], err
		}
	}
	return items, err
}

// Head returns the last position published.
func (e *Engine) Head() int64 { return e.tail.headPos() }

// FeedChanged returns a channel closed when the next items are published.
// Take it before reading, then wait on it when the read came back empty.
func (e *Engine) FeedChanged() <-chan struct{} { return e.tail.wake.wait() }

// broadcast wakes every waiter at once: wait returns a channel that fire
// closes.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) fire() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}

// AwaitHead returns the feed's head once it is at pos or beyond. Scaled
// out, the feed follows the store's, which every instance writes, so a
// position another instance's relay gave may be one this instance has not
// read yet: it waits for it, until ctx ends, unless the store holds no
// such position. Embedded, the head is the store's, and it returns at
// once. The head it returns is below pos, with no error, when pos is not
// in the store; with ctx's error when ctx ended first.
func (e *Engine) AwaitHead(ctx context.Context, pos int64) (int64, error) {
	head := e.Head()
	if head >= pos || !e.scaled() {
		return head, nil
	}
	stored, err := e.store.Head(ctx)
	if err != nil {
		return head, fmt.Errorf("engine: read the store's head: %w", err)
	}
	if stored < pos {
		return head, nil
	}
	e.nudge.fire() // follow the store now rather than at its next poll
	for {
		changed := e.FeedChanged()
		if head = e.Head(); head >= pos {
			return head, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return e.Head(), ctx.Err()
		}
	}
}
