package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/plaithq/plait/engine"
)

// HubSource is the feed a Hub follows: a Source whose last position is
// known. *engine.Engine implements it. If it also has a
// Done() <-chan struct{} method, as the engine has, every stream ends when
// that channel closes.
type HubSource interface {
	Source
	// Head returns the last position published.
	Head() int64
}

// HubOptions tune a Hub. The zero value is usable.
type HubOptions struct {
	// Route returns the routing keys of an item, appended to keys. An
	// item goes to the streams subscribed to one of its keys (and whose
	// Filter lets it through). Nil gives every item the one key "".
	Route func(it engine.Item, keys []string) []string
	// Heartbeat is how long a stream stays silent before it sends a
	// ": ping" comment (default 15s).
	Heartbeat time.Duration
	// Retry, when positive, is sent first on every stream as the SSE
	// retry field; otherwise a ": connected" comment is.
	Retry time.Duration
	// PageSize is how many feed items one read fetches (default 256).
	PageSize int
	// QueueBytes caps the frames waiting for one stream (default 64 KiB).
	// A stream whose client does not keep up drops its queue and reads
	// the feed from where it stands instead, so that it holds no more.
	QueueBytes int
	// WriteTimeout bounds how long one write to a stream may block before
	// the client is cut loose (default 20s).
	WriteTimeout time.Duration
	// CatchUps is how many streams may read the feed at once, a page
	// each, to catch up (default half the CPUs, at least one). A crowd of
	// clients resuming from far back, which costs a scan of the log each,
	// takes turns at that many, and leaves the rest of the machine to the
	// streams that keep up and to whatever else the process serves.
	CatchUps int
}

func (o *HubOptions) defaults() {
	if o.Route == nil {
		o.Route = func(_ engine.Item, keys []string) []string { return append(keys, "") }
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.PageSize <= 0 {
		o.PageSize = 256
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 64 << 10
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 20 * time.Second
	}
	if o.CatchUps <= 0 {
		o.CatchUps = max(1, runtime.GOMAXPROCS(0)/2)
	}
}

// Subscription says which items a stream gets: those with a routing key
// among Keys (nil: the key "") that Filter (nil: all) lets through, and
// until when.
type Subscription struct {
	Keys   []string
	Filter Filter
	// Until, when not zero, ends the stream at that time with ErrExpired:
	// when the credentials it was opened with expire, say.
	Until time.Time
}

// ErrExpired ends a stream at its Subscription's Until.
var ErrExpired = errors.New("relay: the stream's time is up")

// ErrClosed ends the streams of a closed Hub.
var ErrClosed = errors.New("relay: hub closed")

// Hub fans one feed out to many streams. One goroutine reads the feed,
// encodes each item once and queues the frame for exactly the streams
// subscribed to one of the item's routing keys (HubOptions.Route), so an
// item costs work for the streams that get it, not for every stream.
//
// A stream whose connection was handed over with Attach costs no
// goroutine of its own while its client keeps up: a few writer goroutines
// (one per CPU) write the queued frames to the connections without
// blocking. A client that does not keep up gets a goroutine that finishes
// the write with a deadline (WriteTimeout), and a client that falls more
// than QueueBytes behind reads the feed from where it stands, as a
// resuming client does; either way the others go on at once. A stream
// served with Stream runs in the caller's goroutine, woken only when it
// has frames.
//
// The hub's goroutines run while it has streams.
type Hub struct {
	src   HubSource
	opts  HubOptions
	done  <-chan struct{} // the source's Done, nil if it has none
	turns chan struct{}   // a catch-up's page is read holding one; see HubOptions.CatchUps

	mu      sync.Mutex
	closed  bool
	quit    chan struct{} // closed by Close
	running bool
	pos     int64 // the last position dispatched
	// byKey lists the streams of each routing key in the order they came,
	// so that each gets its turn at the same place in every round of the
	// writers, and waits one round at most.
	byKey  map[string][]*sub
	all    map[*sub]struct{}
	shards []*shard
	nextID int
	keyBuf []string
	ready  [][]*sub // see readyBuf

	frames, writes, slow, overflows atomic.Int64
}

// HubStats count what a hub did.
type HubStats struct {
	// Streams is how many streams it serves now.
	Streams int
	// Frames is how many frames it queued for streams.
	Frames int64
	// Writes is how many writes to attached connections it made without
	// blocking.
	Writes int64
	// Slow is how many times a client did not take a write at once, so
	// that a goroutine finished it.
	Slow int64
	// Overflows is how many times a stream fell QueueBytes behind and read
	// the feed instead.
	Overflows int64
}

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats {
	return HubStats{
		Streams: h.Len(), Frames: h.frames.Load(), Writes: h.writes.Load(),
		Slow: h.slow.Load(), Overflows: h.overflows.Load(),
	}
}

// NewHub makes a hub over src.
func NewHub(src HubSource, opts HubOptions) *Hub {
	opts.defaults()
	h := &Hub{src: src, opts: opts, quit: make(chan struct{}), turns: make(chan struct{}, opts.CatchUps),
		byKey: map[string][]*sub{}, all: map[*sub]struct{}{}}
	if d, ok := src.(interface{ Done() <-chan struct{} }); ok {
		h.done = d.Done()
	}
	return h
}

// queued is one frame waiting for a stream; pos is 0 for a comment.
type queued struct {
	pos   int64
	frame []byte
}

// sub is one stream.
type sub struct {
	h      *Hub
	keys   []string
	slots  []int // where in the hub's list of each key it is
	filter Filter
	shard  int
	until  time.Time   // see Subscription.Until
	expiry *time.Timer // ends the stream at until; set under mu

	conn  net.Conn        // an attached stream's connection
	raw   syscall.RawConn // for writes that do not block; nil if none
	sink  Sink            // a pinned stream's sink
	ended func(error)     // an attached stream's end
	wake  chan struct{}   // wakes the goroutine that owns the stream

	lastWrite atomic.Int64 // unix nanoseconds

	mu         sync.Mutex
	owned      bool // a goroutine writes the stream; else a shard writer does
	pinned     bool // the owning goroutine never lets go
	signaled   bool // in its shard's ready list
	closed     bool
	err        error
	queue      []queued
	queueBytes int
	lastQueued int64  // the last position queued
	dropUntil  int64  // frames up to here must be read from the feed
	pos        int64  // every frame up to here was written or skipped
	pending    []byte // bytes to write before anything else
}

// shard is one writer goroutine's share of the streams.
type shard struct {
	mu    sync.Mutex
	ready []*sub
	wake  chan struct{}
}

// Stream sends the client every item after position from that sn lets
// through, as SSE frames (see AppendFrame), in position order, then every
// item published after them, with a heartbeat comment whenever it was
// silent for the hub's Heartbeat, until ctx ends (it returns nil), the hub
// closes or the source is done (nil), or the sink fails or the feed cannot
// be read (the error). It runs in the caller's goroutine, which sleeps
// until there are frames to write.
func (h *Hub) Stream(ctx context.Context, sink Sink, from int64, sn Subscription) error {
	s := h.newSub(sn)
	s.sink, s.pinned = sink, true
	if err := h.add(s, from); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { h.end(s, nil) })
	defer stop()
	s.own()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Attach hands the connection to the hub, which writes the stream to it
// from now on: every item after position from that sn lets through. It
// returns at once. The hub closes conn when the stream ends: when the
// client closes it or fails, when the hub closes or the source is done,
// and then calls ended once, with nil or with what failed. The caller must
// not use conn any more; it must have sent the response's header.
func (h *Hub) Attach(conn net.Conn, from int64, sn Subscription, ended func(error)) {
	s := h.newSub(sn)
	s.conn, s.ended = conn, ended
	if sc, ok := conn.(syscall.Conn); ok && canTryWrite {
		if raw, err := sc.SyscallConn(); err == nil {
			s.raw = raw
		}
	}
	s.pinned = s.raw == nil
	if err := h.add(s, from); err != nil {
		conn.Close()
		if ended != nil {
			ended(err)
		}
		return
	}
	go s.watch()
	go s.own()
}

// Close ends every stream and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.quit)
	subs := make([]*sub, 0, len(h.all))
	for s := range h.all {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		h.end(s, nil)
	}
}

// Len returns how many streams the hub serves.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.all)
}

func (h *Hub) newSub(sn Subscription) *sub {
	keys := sn.Keys
	if keys == nil {
		keys = []string{""}
	}
	keys = slices.Clone(keys)
	slices.Sort(keys)
	return &sub{h: h, keys: slices.Compact(keys), filter: sn.Filter, until: sn.Until, wake: make(chan struct{}, 1)}
}

// preamble is what a stream sends first.
func (h *Hub) preamble() []byte {
	if h.opts.Retry > 0 {
		return fmt.Appendf(nil, "retry: %d\n\n", h.opts.Retry.Milliseconds())
	}
	return []byte(": connected\n\n")
}

// add registers s from position from: frames after the hub's position are
// queued for it from now on, and its goroutine reads those from from to
// there from the feed. s starts owned: its goroutine writes the preamble.
func (h *Hub) add(s *sub, from int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if !h.running {
		h.start()
	}
	s.shard = h.nextID % len(h.shards)
	h.nextID++
	if !s.until.IsZero() {
		s.mu.Lock()
		s.expiry = time.AfterFunc(time.Until(s.until), func() { h.end(s, ErrExpired) })
		s.mu.Unlock()
	}
	s.pos, s.lastQueued = from, from
	if from < h.pos {
		s.dropUntil = h.pos
	}
	s.owned = true
	s.pending = h.preamble()
	s.lastWrite.Store(time.Now().UnixNano())
	h.all[s] = struct{}{}
	s.slots = make([]int, len(s.keys))
	for i, k := range s.keys {
		s.slots[i] = len(h.byKey[k])
		h.byKey[k] = append(h.byKey[k], s)
	}
	return nil
}

// start starts the hub's goroutines; h.mu is held.
func (h *Hub) start() {
	h.running = true
	h.pos = max(h.pos, h.src.Head())
	n := min(runtime.GOMAXPROCS(0), 8)
	h.shards = make([]*shard, n)
	stop := make(chan struct{})
	for i := range h.shards {
		sh := &shard{wake: make(chan struct{}, 1)}
		h.shards[i] = sh
		go sh.run(stop)
	}
	go h.loop(stop)
}

// loop reads the feed and dispatches it until the hub has no stream left.
func (h *Hub) loop(stop chan struct{}) {
	defer close(stop)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-h.quit:
		case <-stop:
		}
		cancel()
	}()
	tick := time.NewTicker(min(max(h.opts.Heartbeat/4, time.Millisecond), time.Second))
	defer tick.Stop()
	var done <-chan struct{} = h.done
	for {
		h.mu.Lock()
		if len(h.all) == 0 || h.closed {
			h.running = false
			h.mu.Unlock()
			return
		}
		pos := h.pos
		h.mu.Unlock()

		changed := h.src.FeedChanged()
		items, err := h.src.ReadFeed(ctx, pos, h.opts.PageSize)
		if err != nil {
			if ctx.Err() == nil {
				h.endAll(fmt.Errorf("relay: read feed after %d: %w", pos, err))
			}
			continue
		}
		if len(items) > 0 {
			h.dispatch(items)
			// A feed that never runs dry must not starve the heartbeats
			// of the streams that none of its items is for.
			select {
			case <-tick.C:
				h.heartbeats()
			default:
			}
			continue
		}
		select {
		case <-changed:
		case <-tick.C:
			h.heartbeats()
		case <-done:
			h.endAll(nil)
			done = nil
		case <-ctx.Done():
		}
	}
}

// endAll ends every stream with err.
func (h *Hub) endAll(err error) {
	h.mu.Lock()
	subs := make([]*sub, 0, len(h.all))
	for s := range h.all {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		h.end(s, err)
	}
}

// dispatch queues each item's frame for the streams that get it and hands
// them to their writers.
func (h *Hub) dispatch(items []engine.Item) {
	var failed []*sub
	var failure error
	var queuedFrames int64
	h.mu.Lock()
	shards := h.shards
	ready := h.readyBuf(len(shards))
	for _, it := range items {
		if it.Position <= h.pos {
			continue
		}
		h.pos = it.Position
		h.keyBuf = h.opts.Route(it, h.keyBuf[:0])
		var frame []byte
		var err error
		for _, k := range h.keyBuf {
			for _, s := range h.byKey[k] {
				if s.filter != nil && !s.filter(it) {
					continue
				}
				if frame == nil && err == nil {
					if frame, err = AppendFrame(nil, it); err != nil {
						err = fmt.Errorf("relay: encode item %d: %w", it.Position, err)
					}
				}
				if err != nil {
					failed, failure = append(failed, s), err
					continue
				}
				queuedFrames++
				if s.push(it.Position, frame, h.opts.QueueBytes) {
					ready[s.shard] = append(ready[s.shard], s)
				}
			}
		}
	}
	h.mu.Unlock()
	h.frames.Add(queuedFrames)
	for i, subs := range ready {
		if len(subs) > 0 {
			shards[i].add(subs)
		}
	}
	for _, s := range failed {
		h.end(s, failure)
	}
}

// readyBuf returns the hub's lists of streams to hand to each shard,
// emptied; only the loop's goroutine uses them.
func (h *Hub) readyBuf(n int) [][]*sub {
	if len(h.ready) != n {
		h.ready = make([][]*sub, n)
	}
	for i := range h.ready {
		clear(h.ready[i])
		h.ready[i] = h.ready[i][:0]
	}
	return h.ready
}

// heartbeats queues a ping for every stream silent for a heartbeat.
func (h *Hub) heartbeats() {
	limit := time.Now().Add(-h.opts.Heartbeat).UnixNano()
	h.mu.Lock()
	shards := h.shards
	ready := h.readyBuf(len(shards))
	for s := range h.all {
		if s.lastWrite.Load() > limit {
			continue
		}
		s.mu.Lock()
		if !s.closed && len(s.queue) == 0 && len(s.pending) == 0 {
			s.queue = append(s.queue, queued{frame: ping})
			if !s.signaled {
				s.signaled = true
				ready[s.shard] = append(ready[s.shard], s)
			}
		}
		s.mu.Unlock()
	}
	h.mu.Unlock()
	for i, subs := range ready {
		if len(subs) > 0 {
			shards[i].add(subs)
		}
	}
}

var ping = []byte(": ping\n\n")

// keepQueue is the most entries a stream's emptied queue keeps room for: a
// stream behind by a few frames queues them without allocating, an idle
// one holds little.
const keepQueue = 32

// push queues a frame, or when the queue would outgrow limit drops the
// queue so that the stream reads the feed up to pos instead. It reports
// whether the stream must be handed to its shard's writer.
func (s *sub) push(pos int64, frame []byte, limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || pos <= s.lastQueued {
		return false // ended, or already queued through another key
	}
	s.lastQueued = pos
	if s.queueBytes+len(frame) > limit {
		clear(s.queue)
		s.queue, s.queueBytes = nil, 0
		s.dropUntil = pos
		s.h.overflows.Add(1)
	} else {
		s.queue = append(s.queue, queued{pos: pos, frame: frame})
		s.queueBytes += len(frame)
	}
	if s.signaled {
		return false
	}
	s.signaled = true
	return true
}

// take appends the queued frames after s.pos to buf and empties the queue;
// s.mu is held.
func (s *sub) take(buf []byte) []byte {
	for _, q := range s.queue {
		if q.pos == 0 {
			buf = append(buf, q.frame...)
			continue
		}
		if q.pos <= s.pos {
			continue
		}
		buf = append(buf, q.frame...)
		s.pos = q.pos
	}
	clear(s.queue)
	if cap(s.queue) > keepQueue {
		s.queue = nil
	} else {
		s.queue = s.queue[:0]
	}
	s.queueBytes = 0
	return buf
}

func (sh *shard) add(subs []*sub) {
	sh.mu.Lock()
	sh.ready = append(sh.ready, subs...)
	sh.mu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

// run writes the frames of the shard's streams that have some, until stop
// closes.
func (sh *shard) run(stop <-chan struct{}) {
	var buf, next []*sub
	scratch := make([]byte, 0, 64<<10)
	for {
		select {
		case <-sh.wake:
		case <-stop:
			return
		}
		sh.mu.Lock()
		buf, sh.ready = sh.ready, next[:0]
		sh.mu.Unlock()
		for i, s := range buf {
			scratch = s.writeDirect(scratch[:0])
			buf[i] = nil
		}
		next = buf
		if cap(scratch) > 1<<20 {
			scratch = make([]byte, 0, 64<<10)
		}
	}
}

// writeDirect writes the stream's queued frames without blocking when no
// goroutine owns it, or wakes the goroutine that does. What the socket does
// not take at once is left to a goroutine that takes the stream over.
func (s *sub) writeDirect(scratch []byte) []byte {
	s.mu.Lock()
	s.signaled = false
	if s.closed {
		s.mu.Unlock()
		return scratch
	}
	if s.owned {
		s.mu.Unlock()
		s.notify()
		return scratch
	}
	if s.dropUntil > s.pos {
		s.owned = true
		s.mu.Unlock()
		go s.own()
		return scratch
	}
	scratch = s.take(scratch)
	s.mu.Unlock()
	if len(scratch) == 0 {
		return scratch
	}
	n, err := tryWrite(s.raw, scratch)
	if err != nil {
		s.h.end(s, fmt.Errorf("relay: write to client: %w", err))
		return scratch
	}
	s.h.writes.Add(1)
	if n > 0 {
		s.lastWrite.Store(time.Now().UnixNano())
	}
	if n < len(scratch) {
		s.h.slow.Add(1)
		s.mu.Lock()
		s.pending = append([]byte(nil), scratch[n:]...)
		s.owned = true
		s.mu.Unlock()
		go s.own()
	}
	return scratch
}

func (s *sub) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// own writes the stream while the calling goroutine owns it: what is
// pending, then the feed up to dropUntil, then the queue. An attached
// stream that can be written without blocking is then handed back to its
// shard's writer; a pinned one waits for more.
func (s *sub) own() {
	var buf []byte
	for {
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			return
		case len(s.pending) > 0:
			p := s.pending
			s.pending = nil
			s.mu.Unlock()
			if err := s.write(p); err != nil {
				s.h.end(s, err)
				return
			}
		case s.dropUntil > s.pos:
			from, until := s.pos, s.dropUntil
			s.mu.Unlock()
			if err := s.catchUp(from, until); err != nil {
				s.h.end(s, err)
				return
			}
		case len(s.queue) > 0:
			buf = s.take(buf[:0])
			s.mu.Unlock()
			if len(buf) > 0 {
				if err := s.write(buf); err != nil {
					s.h.end(s, err)
					return
				}
			}
			if cap(buf) > flushAt {
				buf = nil
			}
		case s.pinned:
			s.mu.Unlock()
			<-s.wake
		default:
			// A write deadline left behind would fail the writes that do
			// not block once it passed.
			if err := s.conn.SetWriteDeadline(time.Time{}); err != nil {
				s.mu.Unlock()
				s.h.end(s, fmt.Errorf("relay: clear the write deadline: %w", err))
				return
			}
			s.owned = false
			s.mu.Unlock()
			return
		}
	}
}

// catchUp writes the frames of the feed in (from, until] that s gets, a
// page of the feed at a time, then moves s.pos to until.
func (s *sub) catchUp(from, until int64) error {
	var keys []string
	buf := make([]byte, 0, 4096)
	var wrote time.Time // the last write; none yet, so the first page's frames go at once
	pos := from
	for pos < until {
		var err error
		var more bool
		if buf, pos, more, err = s.readPage(buf, pos, until, &keys); err != nil || !more {
			return err
		}
		// What a page brought leaves before the next page is read, if
		// nothing has been written for a while: where few items match, a
		// client resuming far back would otherwise wait for the whole
		// backlog before its first frame. A dense catch-up writes
		// flushAt bytes or more at a time.
		if len(buf) >= flushAt || len(buf) > 0 && time.Since(wrote) >= catchUpFlush {
			if err := s.write(buf); err != nil {
				return err
			}
			buf = buf[:0]
			wrote = time.Now()
		}
	}
	if len(buf) > 0 {
		if err := s.write(buf); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.pos = max(s.pos, until)
	s.mu.Unlock()
	return nil
}

// readPage appends to buf the frames s gets of the page of the feed after
// pos, up to until, and returns where the page ended. It reads in one of
// the hub's turns, which it gives back before anything is written to the
// client, so that a slow client holds none; more is false if the stream or
// the hub ended while it waited for one.
func (s *sub) readPage(buf []byte, pos, until int64, keys *[]string) (_ []byte, _ int64, more bool, _ error) {
	h := s.h
	if !s.takeTurn() {
		return buf, pos, false, nil
	}
	defer func() { <-h.turns }()
	items, err := h.src.ReadFeed(context.Background(), pos, h.opts.PageSize)
	if err != nil {
		return buf, pos, false, fmt.Errorf("relay: read feed after %d: %w", pos, err)
	}
	if len(items) == 0 {
		// until is a head the feed published, so nothing is left up to it:
		// positions no item has (a restored store skips those its
		// predecessor gave).
		return buf, until, true, nil
	}
	for _, it := range items {
		if it.Position <= pos {
			continue // never send a position twice, whatever the source does
		}
		if it.Position > until {
			break
		}
		pos = it.Position
		if !s.gets(it, keys) {
			continue
		}
		if buf, err = AppendFrame(buf, it); err != nil {
			return buf, pos, false, fmt.Errorf("relay: encode item %d: %w", it.Position, err)
		}
	}
	if items[len(items)-1].Position >= until {
		pos = until
	}
	return buf, pos, true, nil
}

// takeTurn waits for one of the hub's catch-up turns; it reports false if
// the stream or the hub ended first.
func (s *sub) takeTurn() bool {
	for {
		if s.isClosed() {
			return false
		}
		select {
		case s.h.turns <- struct{}{}:
			return true
		case <-s.h.quit:
			return false
		case <-s.wake:
			// The stream ended, or has frames queued, which its owner
			// looks for once the catch-up is done: look again.
		}
	}
}

// gets reports whether the item goes to s: one of its routing keys is one
// of s's, and s's filter lets it through.
func (s *sub) gets(it engine.Item, keys *[]string) bool {
	*keys = s.h.opts.Route(it, (*keys)[:0])
	for _, k := range *keys {
		if slices.Contains(s.keys, k) {
			return s.filter == nil || s.filter(it)
		}
	}
	return false
}

func (s *sub) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// write writes b whole, blocking at most the write timeout.
func (s *sub) write(b []byte) error {
	if s.sink != nil {
		if err := send(s.sink, b); err != nil {
			return err
		}
	} else {
		if err := s.conn.SetWriteDeadline(time.Now().Add(s.h.opts.WriteTimeout)); err != nil {
			return fmt.Errorf("relay: write to client: %w", err)
		}
		if _, err := s.conn.Write(b); err != nil {
			return fmt.Errorf("relay: write to client: %w", err)
		}
	}
	s.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// watch reads the attached connection until it fails or the client closes
// it, then ends the stream: a client sends nothing after its request.
func (s *sub) watch() {
	b := make([]byte, 64)
	for {
		if _, err := s.conn.Read(b); err != nil {
			s.h.end(s, nil)
			return
		}
	}
}

// unlist removes the stream at index i of key k's list, moving the last
// one into its place; h.mu is held.
func (h *Hub) unlist(k string, i int) {
	list := h.byKey[k]
	last := list[len(list)-1]
	list[i] = last
	for j, lk := range last.keys {
		if lk == k {
			last.slots[j] = i
		}
	}
	list[len(list)-1] = nil
	if list = list[:len(list)-1]; len(list) == 0 {
		delete(h.byKey, k)
	} else {
		h.byKey[k] = list
	}
}

// end ends the stream once: it leaves the hub, its connection closes and
// its goroutine wakes.
func (h *Hub) end(s *sub, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.err = true, err
	if s.expiry != nil {
		s.expiry.Stop()
	}
	clear(s.queue)
	s.queue, s.pending = nil, nil
	s.mu.Unlock()

	h.mu.Lock()
	if _, ok := h.all[s]; ok {
		delete(h.all, s)
		for i, k := range s.keys {
			h.unlist(k, s.slots[i])
		}
	}
	h.mu.Unlock()
	s.notify()
	if s.conn != nil {
		s.conn.Close()
	}
	if s.ended != nil {
		s.ended(err)
	}
}
