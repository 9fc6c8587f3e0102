package relay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/relay"
)

// feed is an in-memory Source.
type feed struct {
	mu      sync.Mutex
	items   []engine.Item
	changed chan struct{}
	reads   int
	failAt  int // ReadFeed fails on this read (1-based); 0 never
}

func newFeed() *feed { return &feed{changed: make(chan struct{})} }

func (f *feed) publish(items ...engine.Item) {
	f.mu.Lock()
	f.items = append(f.items, items...)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *feed) FeedChanged() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *feed) ReadFeed(ctx context.Context, after int64, limit int) ([]engine.Item, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.reads == f.failAt {
		return nil, errors.New("disk on fire")
	}
	var out []engine.Item
	for _, it := range f.items {
		if it.Position > after && len(out) < limit {
			out = append(out, it)
		}
	}
	return out, nil
}

func event(pos int64, typ, owner string) engine.Item {
	return engine.Item{Position: pos, Owner: owner, Event: &plait.Event{
		ID: fmt.Sprintf("c%d.1", pos), Type: typ, AggregateID: "a", Seq: pos, Name: "added",
		Data: json.RawMessage(`{"by":1}`), CorrelationID: "c", CausationID: "c", User: owner,
	}}
}

func outcome(pos int64, typ, owner string) engine.Item {
	return engine.Item{Position: pos, Owner: owner, Outcome: &plait.Outcome{
		Status: plait.StatusRejected, Owner: owner, Position: pos,
		Errors:  []plait.FieldError{{Path: "by", Code: "invalid", Message: "no"}},
		Command: plait.Command{ID: fmt.Sprintf("c%d", pos), Type: typ, AggregateID: "a", Name: "add", Data: json.RawMessage(`{"by":0}`), CorrelationID: "c", User: owner},
	}}
}

// sink collects what a stream writes; it signals every flush.
type sink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	flushed chan struct{}
	failAt  int // Write fails once this many bytes were written; 0 never
	onWrite func([]byte)
}

func newSink() *sink { return &sink{flushed: make(chan struct{}, 1024)} }

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAt > 0 && s.buf.Len()+len(p) > s.failAt {
		return 0, io.ErrClosedPipe
	}
	if s.onWrite != nil {
		s.onWrite(p)
	}
	return s.buf.Write(p)
}

func (s *sink) Flush() error {
	select {
	case s.flushed <- struct{}{}:
	default:
	}
	return nil
}

func (s *sink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// frame is one parsed SSE frame.
type frame struct {
	id, event, data string
}

func parse(t *testing.T, s string) (frames []frame, comments []string) {
	t.Helper()
	var cur frame
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.data != "" {
				frames = append(frames, cur)
			}
			cur = frame{}
		case strings.HasPrefix(line, ":"):
			comments = append(comments, strings.TrimSpace(line[1:]))
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data += line[6:]
		case strings.HasPrefix(line, "retry: "):
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
	return frames, comments
}

func waitFor(t *testing.T, s *sink, cond func(string) bool) string {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if out := s.String(); cond(out) {
			return out
		}
		select {
		case <-s.flushed:
		case <-deadline:
			t.Fatalf("timed out; stream so far:\n%s", s.String())
		}
	}
}

// stream runs one stream of a hub of its own over src until ctx ends or
// the stream fails.
func stream(ctx context.Context, src relay.HubSource, s *sink, from int64, filter relay.Filter, opts relay.HubOptions) error {
	h := relay.NewHub(src, opts)
	defer h.Close()
	return h.Stream(ctx, s, from, relay.Subscription{Filter: filter})
}

func TestStreamSendsFilteredItemsInOrderThenFollows(t *testing.T) {
	f := newFeed()
	f.publish(event(1, "counter", "ann"), outcome(2, "counter", "ann"), event(3, "counter", "bob"), outcome(4, "counter", "bob"), event(5, "other", "ann"))
	s := newSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	onlyAnnCounters := func(it engine.Item) bool { return it.Owner == "ann" && relay.ItemType(it) == "counter" }
	go func() {
		done <- stream(ctx, f, s, 1, onlyAnnCounters, relay.HubOptions{PageSize: 2, Heartbeat: time.Hour})
	}()
	waitFor(t, s, func(out string) bool { return strings.Contains(out, "id: 2\n") })
	f.publish(event(6, "counter", "ann"), outcome(7, "counter", "ann"))
	out := waitFor(t, s, func(out string) bool { return strings.Contains(out, "id: 7\n") })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Stream = %v, want nil after cancel", err)
	}
	frames, _ := parse(t, out)
	var ids []string
	for _, fr := range frames {
		ids = append(ids, fr.id)
	}
	if got := strings.Join(ids, ","); got != "2,6,7" {
		t.Fatalf("frames %s, want 2,6,7 (after 1, ann's counters only)", got)
	}
	if frames[0].event != relay.KindOutcome || frames[1].event != relay.KindEvent {
		t.Fatalf("kinds %q %q", frames[0].event, frames[1].event)
	}
	var of relay.OutcomeFrame
	if err := json.Unmarshal([]byte(frames[0].data), &of); err != nil {
		t.Fatal(err)
	}
	if of.ID != "c2" || of.Status != plait.StatusRejected || string(of.Data) != `{"by":0}` || of.Errors[0].Code != "invalid" || of.Position != 2 {
		t.Fatalf("outcome frame = %+v", of)
	}
	var ev plait.Event
	if err := json.Unmarshal([]byte(frames[1].data), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.ID != "c6.1" || ev.Position != 6 {
		t.Fatalf("event frame = %+v", ev)
	}
}

func TestStreamHeartbeatsWhileEverythingIsFilteredOut(t *testing.T) {
	f := newFeed()
	s := newSink()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go stream(ctx, f, s, 0, func(engine.Item) bool { return false }, relay.HubOptions{Heartbeat: 20 * time.Millisecond})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for pos := int64(1); ; pos++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				f.publish(event(pos, "counter", "x"))
			}
		}
	}()
	waitFor(t, s, func(out string) bool { return strings.Contains(out, ": ping") })
}

// endlessFeed is a Source that is never caught up: every read returns a
// full page of new events of type "busy", as a feed under a load the
// reader cannot keep up with does.
type endlessFeed struct{}

func (endlessFeed) FeedChanged() <-chan struct{} { return make(chan struct{}) }

func (endlessFeed) ReadFeed(_ context.Context, after int64, limit int) ([]engine.Item, error) {
	items := make([]engine.Item, limit)
	for i := range items {
		items[i] = event(after+int64(i)+1, "busy", "x")
	}
	return items, nil
}

func (endlessFeed) Head() int64 { return 0 }

// TestStreamHeartbeatsWhileTheFeedNeverRunsDry: a stream that gets none
// of a feed's items still gets its heartbeat when every read of the feed
// returns items, so a proxy does not cut it as idle.
func TestStreamHeartbeatsWhileTheFeedNeverRunsDry(t *testing.T) {
	quiet := func(it engine.Item) bool { return it.Event.Type == "quiet" }
	s := newSink()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go stream(ctx, endlessFeed{}, s, 0, quiet, relay.HubOptions{Heartbeat: 20 * time.Millisecond})
	waitFor(t, s, func(out string) bool { return strings.Count(out, ": ping") >= 2 })
}

func TestStreamEndsWhenTheClientFails(t *testing.T) {
	f := newFeed()
	for i := int64(1); i <= 100; i++ {
		f.publish(event(i, "counter", "x"))
	}
	s := newSink()
	s.failAt = 1000
	err := stream(context.Background(), f, s, 0, nil, relay.HubOptions{PageSize: 10})
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Stream = %v, want the write error", err)
	}
}

func TestStreamEndsWhenTheFeedFails(t *testing.T) {
	f := newFeed()
	f.failAt = 1
	err := stream(context.Background(), f, newSink(), 0, nil, relay.HubOptions{})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Stream = %v, want the read error", err)
	}
}

func TestParseToken(t *testing.T) {
	good := map[string]int64{"0": 0, "1": 1, "42": 42, "007": 7, "9223372036854775807": 1<<63 - 1}
	for s, want := range good {
		if got, err := relay.ParseToken(s); err != nil || got != want {
			t.Errorf("ParseToken(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "-1", "+1", " 1", "1 ", "1.0", "0x10", "abc", "9223372036854775808", "12345678901234567890"} {
		if _, err := relay.ParseToken(s); !errors.Is(err, relay.ErrBadToken) {
			t.Errorf("ParseToken(%q) = %v, want ErrBadToken", s, err)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"0", "17", "", "-1", "1e3", "9223372036854775807", "9223372036854775808", "٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := relay.ParseToken(s)
		if err != nil {
			if !errors.Is(err, relay.ErrBadToken) {
				t.Fatalf("error %v does not wrap ErrBadToken", err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseToken(%q) = %d, negative", s, n)
		}
		if back, err := relay.ParseToken(strconv.FormatInt(n, 10)); err != nil || back != n {
			t.Fatalf("round trip of %d: %d %v", n, back, err)
		}
	})
}

func TestAppendFrame(t *testing.T) {
	it := event(12, "counter", "x")
	it.Event.Data = json.RawMessage("{\n\"by\": 1\n}")
	b, err := relay.AppendFrame(nil, it)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "id: 12\nevent: event\ndata: {") || !strings.HasSuffix(s, "}\n\n") || strings.Count(s, "\n") != 4 {
		t.Fatalf("frame = %q", s)
	}
	if _, err := relay.AppendFrame(nil, engine.Item{Position: 1}); err == nil {
		t.Fatal("an empty item encoded")
	}
}

func BenchmarkAppendFrameEvent(b *testing.B) {
	it := event(123456, "counter", "someone")
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = relay.AppendFrame(buf[:0], it); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkAppendFrameOutcome(b *testing.B) {
	it := outcome(123456, "counter", "someone")
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = relay.AppendFrame(buf[:0], it); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}
