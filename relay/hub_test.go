package relay_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/relay"
)

func (f *feed) Head() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.items) == 0 {
		return 0
	}
	return f.items[len(f.items)-1].Position
}

// doneFeed is a feed with a Done channel, as the engine has.
type doneFeed struct {
	*feed
	done chan struct{}
}

func (f doneFeed) Done() <-chan struct{} { return f.done }

// byOwner routes each item by its owner.
func byOwner(it engine.Item, keys []string) []string { return append(keys, it.Owner) }

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

// reader collects the frames a client reads, with their ids, until the
// connection ends.
type reader struct {
	mu       sync.Mutex
	ids      []int64
	comments []string
	changed  chan struct{}
	done     chan struct{}
}

func readConn(c io.Reader) *reader {
	r := &reader{changed: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(c)
		sc.Buffer(make([]byte, 1<<16), 1<<22)
		for sc.Scan() {
			line := sc.Text()
			r.mu.Lock()
			switch {
			case strings.HasPrefix(line, "id: "):
				id, _ := strconv.ParseInt(line[4:], 10, 64)
				r.ids = append(r.ids, id)
			case strings.HasPrefix(line, ":"):
				r.comments = append(r.comments, strings.TrimSpace(line[1:]))
			}
			r.mu.Unlock()
			select {
			case r.changed <- struct{}{}:
			default:
			}
		}
	}()
	return r
}

func (r *reader) snapshot() ([]int64, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids), slices.Clone(r.comments)
}

// waitIDs waits until the client read n frames and returns their ids.
func (r *reader) waitIDs(t *testing.T, n int) []int64 {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ids, _ := r.snapshot()
		if len(ids) >= n {
			return ids
		}
		select {
		case <-r.changed:
		case <-r.done:
			ids, _ := r.snapshot()
			if len(ids) >= n {
				return ids
			}
			t.Fatalf("connection ended after %d frames, want %d", len(ids), n)
		case <-deadline:
			t.Fatalf("timed out with %d frames, want %d", len(ids), n)
		}
	}
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestHubRoutesEachItemToItsStreamsOnly(t *testing.T) {
	f := newFeed()
	f.publish(event(1, "counter", "ann"), event(2, "counter", "bob"))
	h := relay.NewHub(f, relay.HubOptions{Route: byOwner, Heartbeat: time.Hour})
	defer h.Close()
	var readers []*reader
	for _, keys := range [][]string{{"ann"}, {"bob"}, {"ann", "bob"}} {
		srv, cli := tcpPair(t)
		h.Attach(srv, 0, relay.Subscription{Keys: keys}, nil)
		readers = append(readers, readConn(cli))
	}
	for pos := int64(3); pos <= 20; pos++ {
		owner := []string{"ann", "bob", "eve"}[pos%3]
		f.publish(event(pos, "counter", owner))
	}
	var ann, bob, both []int64
	for pos := int64(3); pos <= 20; pos++ {
		switch []string{"ann", "bob", "eve"}[pos%3] {
		case "ann":
			ann, both = append(ann, pos), append(both, pos)
		case "bob":
			bob, both = append(bob, pos), append(both, pos)
		}
	}
	// Last, one item each for ann and bob: a stream that has its last
	// item has every item before it, and a frame too many before it shows.
	f.publish(event(21, "counter", "ann"), event(22, "counter", "bob"))
	ann, bob, both = append(ann, 21), append(bob, 22), append(both, 21, 22)
	ann, bob, both = append([]int64{1}, ann...), append([]int64{2}, bob...), append([]int64{1, 2}, both...)
	slices.Sort(both)
	for i, want := range [][]int64{ann, bob, both} {
		readers[i].waitIDs(t, len(want))
		got, _ := readers[i].snapshot()
		if !slices.Equal(got, want) {
			t.Errorf("stream %d got %v, want %v", i, got, want)
		}
	}
}

func TestHubStreamFiltersAndFollows(t *testing.T) {
	f := newFeed()
	f.publish(event(1, "counter", "ann"), outcome(2, "counter", "ann"), event(3, "counter", "bob"), outcome(4, "counter", "bob"), event(5, "other", "ann"))
	h := relay.NewHub(f, relay.HubOptions{Route: byOwner, PageSize: 2, Heartbeat: time.Hour})
	defer h.Close()
	s := newSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	counters := func(it engine.Item) bool { return relay.ItemType(it) == "counter" }
	go func() {
		done <- h.Stream(ctx, s, 1, relay.Subscription{Keys: []string{"ann"}, Filter: counters})
	}()
	waitFor(t, s, func(out string) bool { return strings.Contains(out, "id: 2\n") })
	f.publish(event(6, "counter", "ann"), outcome(7, "counter", "bob"), outcome(8, "counter", "ann"))
	out := waitFor(t, s, func(out string) bool { return strings.Contains(out, "id: 8\n") })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Stream = %v, want nil after cancel", err)
	}
	frames, comments := parse(t, out)
	var ids []string
	for _, fr := range frames {
		ids = append(ids, fr.id)
	}
	if got := strings.Join(ids, ","); got != "2,6,8" {
		t.Fatalf("frames %s, want 2,6,8", got)
	}
	if len(comments) == 0 || comments[0] != "connected" {
		t.Fatalf("comments %q, want connected first", comments)
	}
}

// TestHubResumeUnionIsExactlyOnce cuts attached streams after a few
// frames while items keep coming, and reconnects from the last id read:
// the union is every item once, in order.
func TestHubResumeUnionIsExactlyOnce(t *testing.T) {
	f := newFeed()
	h := relay.NewHub(f, relay.HubOptions{PageSize: 3, QueueBytes: 2048, Heartbeat: time.Hour})
	defer h.Close()
	const n = 600
	stop := make(chan struct{})
	published := make(chan struct{})
	go func() {
		defer close(published)
		for pos := int64(1); pos <= n; pos++ {
			select {
			case <-stop:
				return
			default:
			}
			if pos%2 == 0 {
				f.publish(outcome(pos, "counter", "x"))
			} else {
				f.publish(event(pos, "counter", "x"))
			}
			if pos%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	defer close(stop)
	var all []int64
	last := int64(0)
	for round := 0; last < n && round < 500; round++ {
		srv, cli := tcpPair(t)
		h.Attach(srv, last, relay.Subscription{}, nil)
		r := readConn(cli)
		// Read a few frames, then hang up.
		deadline := time.After(5 * time.Second)
	read:
		for {
			ids, _ := r.snapshot()
			if len(ids) >= 7+round%5 || (len(ids) > 0 && ids[len(ids)-1] == n) {
				break
			}
			select {
			case <-r.changed:
			case <-deadline:
				break read
			}
		}
		cli.Close()
		<-r.done
		ids, _ := r.snapshot()
		all = append(all, ids...)
		if len(ids) > 0 {
			last = ids[len(ids)-1]
		}
	}
	<-published
	if !slices.Equal(all, seq(1, n)) {
		t.Fatalf("%d frames over all connections, want 1..%d once each in order; first ones %v", len(all), n, all[:min(len(all), 40)])
	}
}

// TestHubSlowClientCatchesUpFromTheFeed gives a stream a tiny queue and a
// client that reads slowly: the stream drops its queue, reads the feed
// instead, and the client still gets every frame once, in order.
func TestHubSlowClientCatchesUpFromTheFeed(t *testing.T) {
	f := newFeed()
	h := relay.NewHub(f, relay.HubOptions{QueueBytes: 1024, Heartbeat: time.Hour})
	defer h.Close()
	srv, cli := tcpPair(t)
	h.Attach(srv, 0, relay.Subscription{}, nil)
	fast, fastCli := tcpPair(t)
	h.Attach(fast, 0, relay.Subscription{}, nil)
	fr := readConn(fastCli)
	const n = 3000
	for pos := int64(1); pos <= n; pos++ {
		f.publish(event(pos, "counter", "x"))
	}
	if got := fr.waitIDs(t, n); !slices.Equal(got, seq(1, n)) {
		t.Fatalf("the fast client got %d frames, not 1..%d", len(got), n)
	}
	// The slow client starts reading only now.
	sr := readConn(&slowReader{r: cli, every: 200, pause: time.Millisecond})
	if got := sr.waitIDs(t, n); !slices.Equal(got, seq(1, n)) {
		t.Fatalf("the slow client got %d frames, not 1..%d", len(got), n)
	}
	if st := h.Stats(); st.Overflows == 0 {
		t.Errorf("stats %+v: want overflows", st)
	}
}

// slowReader pauses after every so many reads.
type slowReader struct {
	r     io.Reader
	n     int
	every int
	pause time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.n++; s.n%s.every == 0 {
		time.Sleep(s.pause)
	}
	return s.r.Read(p[:min(len(p), 512)])
}

// TestHubCutsStuckClientLooseWhileOthersGoOn fills the socket of a client
// that never reads: its stream ends after the write timeout, and a client
// that reads gets everything meanwhile.
func TestHubCutsStuckClientLooseWhileOthersGoOn(t *testing.T) {
	f := newFeed()
	h := relay.NewHub(f, relay.HubOptions{WriteTimeout: 200 * time.Millisecond, Heartbeat: time.Hour})
	defer h.Close()
	stuck, stuckCli := tcpPair(t)
	_ = stuckCli // never read
	ended := make(chan error, 1)
	h.Attach(stuck, 0, relay.Subscription{}, func(err error) { ended <- err })
	srv, cli := tcpPair(t)
	h.Attach(srv, 0, relay.Subscription{}, nil)
	r := readConn(cli)
	big := strings.Repeat("x", 32<<10)
	const n = 400 // some 13 MB: more than the socket buffers hold
	start := time.Now()
	for pos := int64(1); pos <= n; pos++ {
		it := event(pos, "counter", "x")
		it.Event.Data = []byte(strconv.Quote(big))
		f.publish(it)
	}
	if got := r.waitIDs(t, n); !slices.Equal(got, seq(1, n)) {
		t.Fatalf("the reading client got %d frames, not 1..%d", len(got), n)
	}
	select {
	case err := <-ended:
		if err == nil || !strings.Contains(err.Error(), "write to client") {
			t.Fatalf("the stuck stream ended with %v, want a write error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck client was not cut loose")
	}
	t.Logf("reader done and stuck client cut in %s", time.Since(start))
	if h.Len() != 1 {
		t.Fatalf("%d streams, want 1", h.Len())
	}
}

func TestHubCloseEndsEveryStreamOnce(t *testing.T) {
	f := newFeed()
	h := relay.NewHub(f, relay.HubOptions{Heartbeat: time.Hour})
	var mu sync.Mutex
	ends := map[int]int{}
	var readers []*reader
	for i := range 5 {
		srv, cli := tcpPair(t)
		h.Attach(srv, 0, relay.Subscription{}, func(err error) {
			mu.Lock()
			ends[i]++
			mu.Unlock()
			if err != nil {
				t.Errorf("stream %d ended with %v", i, err)
			}
		})
		readers = append(readers, readConn(cli))
	}
	s := newSink()
	streamDone := make(chan error, 1)
	go func() { streamDone <- h.Stream(context.Background(), s, 0, relay.Subscription{}) }()
	waitFor(t, s, func(out string) bool { return strings.Contains(out, "connected") })
	h.Close()
	for _, r := range readers {
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Fatal("a connection stayed open")
		}
	}
	if err := <-streamDone; err != nil {
		t.Fatalf("Stream = %v, want nil", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range 5 {
		if ends[i] != 1 {
			t.Errorf("stream %d ended %d times", i, ends[i])
		}
	}
	srv, _ := tcpPair(t)
	var err error
	h.Attach(srv, 0, relay.Subscription{}, func(e error) { err = e })
	if !errors.Is(err, relay.ErrClosed) {
		t.Fatalf("Attach after Close ended with %v, want ErrClosed", err)
	}
}

func TestHubEndsStreamsWhenTheSourceIsDone(t *testing.T) {
	f := doneFeed{feed: newFeed(), done: make(chan struct{})}
	h := relay.NewHub(f, relay.HubOptions{Heartbeat: time.Hour})
	defer h.Close()
	srv, cli := tcpPair(t)
	ended := make(chan error, 1)
	h.Attach(srv, 0, relay.Subscription{}, func(err error) { ended <- err })
	r := readConn(cli)
	close(f.done)
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("ended with %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end")
	}
	<-r.done
}

func TestHubHeartbeatsAttachedAndPinnedStreams(t *testing.T) {
	f := newFeed()
	h := relay.NewHub(f, relay.HubOptions{Heartbeat: 20 * time.Millisecond, Retry: 3 * time.Second})
	defer h.Close()
	srv, cli := tcpPair(t)
	h.Attach(srv, 0, relay.Subscription{}, nil)
	r := readConn(cli)
	s := newSink()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.Stream(ctx, s, 0, relay.Subscription{})
	out := waitFor(t, s, func(out string) bool { return strings.Count(out, ": ping\n\n") >= 2 })
	if !strings.HasPrefix(out, "retry: 3000\n\n") {
		t.Fatalf("the stream starts %q, want the retry field", out[:min(len(out), 20)])
	}
	deadline := time.After(5 * time.Second)
	for {
		_, comments := r.snapshot()
		if slices.Index(comments, "ping") >= 0 && strings.Count(strings.Join(comments, ","), "ping") >= 2 {
			break
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("attached stream comments %q, want pings", comments)
		}
	}
}

func TestHubStopsItsGoroutinesWhenIdle(t *testing.T) {
	f := newFeed()
	before := runtime.NumGoroutine()
	h := relay.NewHub(f, relay.HubOptions{Heartbeat: 40 * time.Millisecond})
	defer h.Close()
	var clients []net.Conn
	for range 20 {
		srv, cli := tcpPair(t)
		h.Attach(srv, 0, relay.Subscription{}, nil)
		clients = append(clients, cli)
	}
	f.publish(event(1, "counter", "x"))
	for _, c := range clients {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines, %d before the hub", n, before)
	}
	if h.Len() != 0 {
		t.Fatalf("%d streams left", h.Len())
	}
	// It starts again for the next stream.
	srv, cli := tcpPair(t)
	h.Attach(srv, 1, relay.Subscription{}, nil)
	r := readConn(cli)
	f.publish(event(2, "counter", "x"))
	if got := r.waitIDs(t, 1); got[0] != 2 {
		t.Fatalf("got %v, want 2", got)
	}
}

func BenchmarkHubBroadcast(b *testing.B) {
	for _, streams := range []int{100, 1000} {
		b.Run(fmt.Sprint(streams), func(b *testing.B) {
			f := newFeed()
			h := relay.NewHub(f, relay.HubOptions{Heartbeat: time.Hour})
			defer h.Close()
			sinks := make([]*countSink, streams)
			for i := range sinks {
				sinks[i] = &countSink{}
				go h.Stream(context.Background(), sinks[i], 0, relay.Subscription{})
			}
			b.ResetTimer()
			for i := range b.N {
				f.publish(event(int64(i+1), "counter", "x"))
			}
			for _, s := range sinks {
				for s.frames() < b.N {
					time.Sleep(100 * time.Microsecond)
				}
			}
			b.ReportMetric(float64(b.N*streams)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// countSink counts the frames written to it.
type countSink struct {
	mu sync.Mutex
	n  int
}

func (c *countSink) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n += strings.Count(string(p), "id: ")
	c.mu.Unlock()
	return len(p), nil
}

func (c *countSink) Flush() error { return nil }

func (c *countSink) frames() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestHubEndsAStreamAtItsUntil: a stream whose subscription has an Until
// ends then with ErrExpired, attached or pinned; one without goes on.
func TestHubEndsAStreamAtItsUntil(t *testing.T) {
	f := newFeed()
	h := relay.NewHub(f, relay.HubOptions{})
	defer h.Close()
	start := time.Now()
	ended := make(chan error, 1)
	srv, cli := tcpPair(t)
	h.Attach(srv, 0, relay.Subscription{Until: start.Add(100 * time.Millisecond)}, func(err error) { ended <- err })
	r := readConn(cli)
	pinned := make(chan error, 1)
	go func() {
		pinned <- h.Stream(context.Background(), newSink(), 0, relay.Subscription{Until: start.Add(150 * time.Millisecond)})
	}()
	ctx, cancel := context.WithCancel(context.Background())
	lasting := make(chan error, 1)
	go func() { lasting <- h.Stream(ctx, newSink(), 0, relay.Subscription{}) }()
	for what, ch := range map[string]chan error{"attached": ended, "pinned": pinned} {
		select {
		case err := <-ch:
			if !errors.Is(err, relay.ErrExpired) || time.Since(start) < 100*time.Millisecond {
				t.Errorf("the %s stream ended after %s with %v, want ErrExpired after its Until", what, time.Since(start), err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the %s stream did not end at its Until", what)
		}
	}
	<-r.done
	select {
	case err := <-lasting:
		t.Fatalf("the stream without Until ended: %v", err)
	default:
	}
	cancel()
	if err := <-lasting; err != nil {
		t.Fatalf("the stream without Until, cancelled: %v", err)
	}
}

// gatedFeed is a feed whose reads past position gateAt wait until open is
// closed.
type gatedFeed struct {
	*feed
	gateAt int64
	open   chan struct{}
}

func (f gatedFeed) ReadFeed(ctx context.Context, after int64, limit int) ([]engine.Item, error) {
	if after >= f.gateAt {
		<-f.open
	}
	return f.feed.ReadFeed(ctx, after, limit)
}

// TestHubSendsACatchUpsFramesPageByPage: a client resuming far back in a
// feed where few items are its own gets each page's frames as the page is
// read, not once the whole backlog has been: before, a stream following a
// rare type on a long log sent its first frame after seconds.
func TestHubSendsACatchUpsFramesPageByPage(t *testing.T) {
	f := newFeed()
	f.publish(event(1, "counter", "ann"))
	for pos := int64(2); pos <= 100; pos++ {
		f.publish(event(pos, "counter", "bob"))
	}
	f.publish(event(101, "counter", "ann"))
	g := gatedFeed{feed: f, gateAt: 10, open: make(chan struct{})}
	h := relay.NewHub(g, relay.HubOptions{Route: byOwner, PageSize: 10, Heartbeat: time.Hour})
	defer h.Close()
	s := newSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Stream(ctx, s, 0, relay.Subscription{Keys: []string{"ann"}}) }()
	// The first page holds the first frame; the rest of the backlog cannot
	// be read yet.
	waitFor(t, s, func(out string) bool { return strings.Contains(out, "id: 1\n") })
	close(g.open)
	out := waitFor(t, s, func(out string) bool { return strings.Contains(out, "id: 101\n") })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Stream = %v, want nil after cancel", err)
	}
	frames, _ := parse(t, out)
	if len(frames) != 2 {
		t.Fatalf("%d frames, want the 2 of ann", len(frames))
	}
}

// crowdFeed counts the reads of the feed before position backlog under way
// at once, each a little slow, as a page of a long log is. (The hub reads
// what is new after it.)
type crowdFeed struct {
	*feed
	backlog   int64
	now, most atomic.Int32
}

func (f *crowdFeed) ReadFeed(ctx context.Context, after int64, limit int) ([]engine.Item, error) {
	if after >= f.backlog {
		return f.feed.ReadFeed(ctx, after, limit)
	}
	n := f.now.Add(1)
	defer f.now.Add(-1)
	for m := f.most.Load(); n > m && !f.most.CompareAndSwap(m, n); m = f.most.Load() {
	}
	time.Sleep(2 * time.Millisecond)
	return f.feed.ReadFeed(ctx, after, limit)
}

// TestHubCatchUpsTakeTurns: streams resuming from far back at once read
// the feed no more than CatchUps at a time, and each still gets its whole
// backlog, then what follows.
func TestHubCatchUpsTakeTurns(t *testing.T) {
	f := &crowdFeed{feed: newFeed(), backlog: 60}
	for pos := int64(1); pos <= 60; pos++ {
		f.publish(event(pos, "counter", "ann"))
	}
	h := relay.NewHub(f, relay.HubOptions{PageSize: 10, CatchUps: 2, Heartbeat: time.Hour})
	defer h.Close()
	var readers []*reader
	for range 8 {
		srv, cli := tcpPair(t)
		h.Attach(srv, 0, relay.Subscription{}, nil)
		readers = append(readers, readConn(cli))
	}
	f.publish(event(61, "counter", "ann"))
	for i, r := range readers {
		r.waitIDs(t, 61)
		if got, _ := r.snapshot(); !slices.Equal(got, seq(1, 61)) {
			t.Errorf("stream %d got %v, want 1 to 61", i, got)
		}
	}
	if most := f.most.Load(); most > 2 {
		t.Errorf("%d reads of the feed at once, want at most CatchUps = 2", most)
	} else if most < 2 {
		t.Errorf("%d read of the feed at once: 8 streams catching up should have used both turns", most)
	}
}
