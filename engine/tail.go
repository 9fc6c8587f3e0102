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
type tail struct {
	mu    sync.RWMutex
	ring  []Item
	first int64 // lowest position held
	head  int64 // highest position published
	wake  *broadcast
}

func newTail(head int64, size int) *tail {
	return &tail{ring: make([]Item, size), first: head + 1, head: head, wake: newBroadcast()}
}

// start makes head, the store's head when Run starts, the published head,
// and wakes whoever read the feed before.
func (t *tail) start(head int64) {
	t.mu.Lock()
	t.first, t.head = head+1, head
	t.mu.Unlock()
	t.wake.fire()
}

func (t *tail) append(items []Item) {
	if len(items) == 0 {
		return
	}
	t.mu.Lock()
	for _, it := range items {
		t.ring[it.Position%int64(len(t.ring))] = it
		t.head = it.Position
	}
	if lo := t.head - int64(len(t.ring)) + 1; lo > t.first {
		t.first = lo
	}
	t.mu.Unlock()
	t.wake.fire()
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
		items = append(items, t.ring[p%int64(len(t.ring))])
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
