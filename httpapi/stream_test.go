package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/httpapi"
)

// sseFrame is one frame a stream sent.
type sseFrame struct {
	ID    int64
	Event string
	Data  string
}

// sseStream is an open GET /stream.
type sseStream struct {
	resp     *http.Response
	frames   chan sseFrame
	comments chan string
	cancel   context.CancelFunc
	done     chan struct{}
}

// openStream opens GET /stream?query with the given headers (pairs) and
// fails the test unless it answers 200.
func (h *harness) openStream(query string, hdr ...string) *sseStream {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.ts.URL+"/stream"+query, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		resp.Body.Close()
		h.t.Fatalf("GET /stream%s: %d %s", query, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sseStream{resp: resp, frames: make(chan sseFrame, 10000), comments: make(chan string, 100), cancel: cancel, done: make(chan struct{})}
	go s.read()
	h.t.Cleanup(s.close)
	return s
}

func (s *sseStream) read() {
	defer close(s.done)
	defer close(s.frames)
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	var f sseFrame
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if f.Data != "" {
				s.frames <- f
			}
			f = sseFrame{}
		case strings.HasPrefix(line, ":"):
			select {
			case s.comments <- strings.TrimSpace(line[1:]):
			default:
			}
		case strings.HasPrefix(line, "id: "):
			f.ID, _ = strconv.ParseInt(line[4:], 10, 64)
		case strings.HasPrefix(line, "event: "):
			f.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			f.Data += line[6:]
		}
	}
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
	<-s.done
}

// next returns the next frame, failing the test after a while.
func (s *sseStream) next(t *testing.T) sseFrame {
	t.Helper()
	select {
	case f, ok := <-s.frames:
		if !ok {
			t.Fatal("stream ended")
		}
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no frame within 10s")
	}
	return sseFrame{}
}

// outcomeFrame is the data of an outcome frame.
type outcomeFrame struct {
	ID            string             `json:"id"`
	Type          string             `json:"type"`
	AggregateID   string             `json:"aggregateId"`
	Name          string             `json:"name"`
	Status        string             `json:"status"`
	Errors        []plait.FieldError `json:"errors"`
	CorrelationID string             `json:"correlationId"`
	Data          json.RawMessage    `json:"data"`
	User          string             `json:"user"`
}

// visibleTo lists the feed items after from that user may see in testApp:
// counters and tallies are everyone's, notes their owner's (the sender's,
// for a rejected creation).
func visibleTo(t *testing.T, e *engine.Engine, user string, from int64, types ...string) []engine.Item {
	t.Helper()
	var out []engine.Item
	for {
		items, err := e.ReadFeed(context.Background(), from, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			return out
		}
		for _, it := range items {
			from = it.Position
			typ, owner := "", it.Owner
			if it.Event != nil {
				typ = it.Event.Type
			} else {
				typ = it.Outcome.Command.Type
				if owner == "" {
					owner = it.Outcome.Command.User
				}
			}
			if len(types) > 0 && !contains(types, typ) {
				continue
			}
			if typ == "note" && owner != user {
				continue
			}
			out = append(out, it)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestStreamResumesWithLastEventID disconnects a stream mid-way while
// commands go on, and resumes it with Last-Event-ID, then once more with the
// lastEventId parameter: the union of the frames is every frame the user
// may see, each once and in order, and never another user's.
func TestStreamResumesWithLastEventID(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	ann, bob := token(t, "ann"), token(t, "bob")
	h.post(ann, "?wait=settled", add("before", "a", 1), http.StatusOK)
	from := h.e.Head()

	writes := make(chan struct{})
	go func() {
		defer close(writes)
		for i := 0; i < 90; i++ {
			switch i % 6 {
			case 0:
				h.do("POST", "/commands", ann, note(fmt.Sprintf("an%d", i), fmt.Sprintf("ann-%d", i%12), fmt.Sprint("ann ", i)))
			case 1:
				h.do("POST", "/commands", bob, note(fmt.Sprintf("bn%d", i), fmt.Sprintf("bob-%d", i%12), fmt.Sprint("bob ", i)))
			case 2:
				h.do("POST", "/commands", bob, note(fmt.Sprintf("bx%d", i), fmt.Sprintf("bob-new-%d", i), "")) // rejected creation
			case 3:
				h.do("POST", "/commands", bob, add(fmt.Sprintf("bc%d", i), "shared", 1))
			case 4:
				h.do("POST", "/commands", ann, add(fmt.Sprintf("ac%d", i), "shared", i%3)) // every third rejected
			case 5:
				h.do("POST", "/commands", ann, note(fmt.Sprintf("ax%d", i), fmt.Sprintf("ann-new-%d", i), ""))
			}
		}
	}()

	var got []sseFrame
	last := strconv.FormatInt(from, 10)
	s := h.openStream("", "Authorization", "Bearer "+ann, "Last-Event-ID", last)
	for i := 0; i < 40; i++ {
		got = append(got, s.next(t))
	}
	s.close()
	last = strconv.FormatInt(got[len(got)-1].ID, 10)
	for f := range s.frames { // frames already read before the close count too
		got = append(got, f)
		last = strconv.FormatInt(f.ID, 10)
	}

	s = h.openStream("", "Authorization", "Bearer "+ann, "Last-Event-ID", last)
	for i := 0; i < 40; i++ {
		got = append(got, s.next(t))
	}
	s.close()
	last = strconv.FormatInt(got[len(got)-1].ID, 10)
	for f := range s.frames {
		got = append(got, f)
		last = strconv.FormatInt(f.ID, 10)
	}

	<-writes
	h.post(ann, "?wait=settled", add("after", "a", 1), http.StatusOK)
	want := visibleTo(t, h.e, "ann", from)
	s = h.openStream("?lastEventId="+last+"&access_token="+ann, "Cookie", "plait_token=nonsense")
	for len(got) < len(want) {
		got = append(got, s.next(t))
	}
	select {
	case f := <-s.frames:
		t.Fatalf("an extra frame %+v", f)
	case <-time.After(50 * time.Millisecond):
	}

	for i, f := range got {
		it := want[i]
		if f.ID != it.Position {
			t.Fatalf("frame %d has id %d, want %d (frames must be every visible item once, in order)", i, f.ID, it.Position)
		}
		switch {
		case it.Event != nil:
			var ev plait.Event
			if f.Event != "event" || json.Unmarshal([]byte(f.Data), &ev) != nil || ev.ID != it.Event.ID || ev.Position != f.ID {
				t.Fatalf("frame %d = %+v, want event %s", i, f, it.Event.ID)
			}
		default:
			var of outcomeFrame
			if f.Event != "outcome" || json.Unmarshal([]byte(f.Data), &of) != nil {
				t.Fatalf("frame %d = %+v, want an outcome", i, f)
			}
			c := it.Outcome.Command
			if of.ID != c.ID || of.Type != c.Type || of.AggregateID != c.AggregateID || of.Name != c.Name ||
				of.Status != string(it.Outcome.Status) || of.CorrelationID != c.CorrelationID || string(of.Data) != string(c.Data) {
				t.Fatalf("frame %d = %s, want the outcome of %+v", i, f.Data, c)
			}
			if it.Outcome.Status == plait.StatusRejected && len(of.Errors) == 0 {
				t.Fatalf("frame %d: a rejection without errors: %s", i, f.Data)
			}
		}
		if strings.Contains(f.Data, `"bob-`) || strings.Contains(f.Data, `"bob `) {
			t.Fatalf("ann got bob's note: %s", f.Data)
		}
	}
	if len(want) < 100 {
		t.Fatalf("only %d frames: the test did not exercise much", len(want))
	}
}

func TestStreamFiltersByTypeAndUser(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	ann, bob, admin := token(t, "ann"), token(t, "bob"), token(t, "root", "admin")
	from := strconv.FormatInt(h.e.Head(), 10)
	bobNotes := h.openStream("?types=note&lastEventId="+from, "Authorization", "Bearer "+bob)
	adminNotes := h.openStream("?types=note,tally&lastEventId="+from, "Authorization", "Bearer "+admin)
	h.post(ann, "", note("a1", "n-ann", "ann's"), http.StatusAccepted)
	h.post(ann, "", add("c1", "c", 1), http.StatusAccepted)
	h.post(bob, "", note("b1", "n-bob", "bob's"), http.StatusAccepted)

	f := bobNotes.next(t)
	if f.Event != "event" || !strings.Contains(f.Data, `"n-bob"`) {
		t.Fatalf("bob's first frame %+v, want his note's event", f)
	}
	if f := bobNotes.next(t); f.Event != "outcome" || !strings.Contains(f.Data, `"b1"`) {
		t.Fatalf("bob's second frame %+v", f)
	}
	// The admin sees both notes and the tally the counter fed: an event
	// and an outcome of each, and nothing of the counter itself.
	seen := map[string]int{}
	for i := 0; i < 6; i++ {
		f := adminNotes.next(t)
		var m struct{ Type, AggregateID string }
		if err := json.Unmarshal([]byte(f.Data), &m); err != nil {
			t.Fatal(err)
		}
		seen[f.Event+" "+m.Type+"/"+m.AggregateID]++
	}
	want := map[string]int{"event note/n-ann": 1, "outcome note/n-ann": 1, "event note/n-bob": 1, "outcome note/n-bob": 1, "event tally/c": 1, "outcome tally/c": 1}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("the admin's stream had %v, want %v", seen, want)
	}
	select {
	case f := <-bobNotes.frames:
		t.Fatalf("bob got another frame: %+v", f)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestStreamRefusesBadResumeTokens(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	ann := token(t, "ann")
	h.post(ann, "?wait=settled", add("", "a", 1), http.StatusOK)
	head := h.e.Head()
	for _, tc := range []struct{ query, header string }{
		{"", "abc"},
		{"", "-1"},
		{"", "1.5"},
		{"", strconv.FormatInt(head+1, 10)},
		{"?lastEventId=%20", ""},
		{"?lastEventId=x", ""},
		{"?lastEventId=" + strconv.FormatInt(head+100, 10), ""},
		{"?lastEventId=99999999999999999999", ""},
		{"?Last-Event-ID=x", ""},
		{"?Last-Event-ID=" + strconv.FormatInt(head+1, 10), ""},
	} {
		var hdr []string
		if tc.header != "" {
			hdr = []string{"Last-Event-ID", tc.header}
		}
		problem(t, h.do("GET", "/stream"+tc.query, ann, nil, hdr...), http.StatusBadRequest, "invalid")
	}
	problem(t, h.do("GET", "/stream?types=counter,nope", ann, nil), http.StatusBadRequest, httpapi.CodeUnknownType)
	problem(t, h.do("GET", "/stream", "", nil), http.StatusUnauthorized, "")
	problem(t, h.do("GET", "/stream?access_token=forged", "", nil), http.StatusUnauthorized, "")
	// The head itself is a fine place to resume from, as is 0.
	s := h.openStream("", "Authorization", "Bearer "+ann, "Last-Event-ID", strconv.FormatInt(head, 10))
	s.close()
	s = h.openStream("?lastEventId=0", "Cookie", "plait_token="+ann)
	if f := s.next(t); f.ID != 1 {
		t.Fatalf("from 0, the first frame is %d", f.ID)
	}
	// The query parameter may also bear the header's name.
	s = h.openStream("?Last-Event-ID=1", "Cookie", "plait_token="+ann)
	if f := s.next(t); f.ID != 2 {
		t.Fatalf("from ?Last-Event-ID=1, the first frame is %d, want 2", f.ID)
	}
	// Empty, it is no token, as an empty header is: a stream from now.
	for _, q := range []string{"?lastEventId=", "?Last-Event-ID="} {
		// Read before the stream opens: the last post's frames may be
		// published after it answered, and a stream from now opened
		// meanwhile starts before them.
		from := h.e.Head()
		s = h.openStream(q, "Cookie", "plait_token="+ann)
		h.post(ann, "?wait=outcome", add("", "a", 1), http.StatusOK)
		if f := s.next(t); f.ID <= from {
			t.Fatalf("from %s, the first frame is %d, want one after %d", q, f.ID, from)
		}
		s.close()
	}
}

func TestStreamHeartbeatAndClose(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{Heartbeat: 20 * time.Millisecond}, false)
	ann := token(t, "ann")
	s := h.openStream("", "Authorization", "Bearer "+ann)
	for got := 0; got < 2; {
		select {
		case c := <-s.comments:
			if c == "ping" {
				got++
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no heartbeat")
		}
	}
	metrics := h.do("GET", "/metrics", "", nil)
	if !strings.Contains(string(metrics.body), "plait_sse_streams 1") {
		t.Fatalf("metrics do not count the stream:\n%s", metrics.body)
	}
	h.srv.CloseStreams()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Fatal("CloseStreams did not end the stream")
	}
	problem(t, h.do("GET", "/stream", ann, nil), http.StatusServiceUnavailable, "")
}

// TestStreamEndsWhenItsTokenExpires: a stream lives no longer than the
// token it was opened with (its expiry, with the leeway the server grants
// on every token); one opened with a fresh token stays. The client comes
// back with a new token, and resumes with Last-Event-ID.
func TestStreamEndsWhenItsTokenExpires(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	mint := func(sub string, exp time.Time) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": exp.Unix()}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Expired a moment short of the leeway: accepted, for 1 to 2 s more
	// (exp is in whole seconds).
	opened := time.Now()
	expiring := h.openStream("", "Authorization", "Bearer "+mint("ann", opened.Add(2*time.Second-httpapi.Leeway)))
	fresh := h.openStream("", "Authorization", "Bearer "+mint("ann", opened.Add(time.Hour)))
	defer fresh.close()
	select {
	case <-expiring.done:
		if lived := time.Since(opened); lived < 900*time.Millisecond {
			t.Fatalf("the stream ended after %s, before its token expired", lived)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its token by 10 s")
	}
	expiring.close()
	h.post(token(t, "ann"), "?wait=settled", add("after", "a", 1), http.StatusOK)
	if f := fresh.next(t); !strings.Contains(f.Data, `"after"`) {
		t.Fatalf("the stream with a fresh token got %+v", f)
	}
}

// HEAD /stream answers the stream's headers, the position it would start
// after among them, and no body: over HTTP/1 the connection is not taken
// over, no stream is held, and the connection serves the next request.
func TestHeadStreamAnswersTheHeadersOnly(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	ann := token(t, "ann")
	h.post(ann, "?wait=settled", add("before", "a", 1), http.StatusOK)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	head, _ := http.NewRequest("HEAD", h.ts.URL+"/stream", nil)
	head.Header.Set("Authorization", "Bearer "+ann)
	if err := head.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, head)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.FormatInt(h.e.Head(), 10); resp.StatusCode != http.StatusOK || resp.Header.Get(httpapi.StartHeader) != want {
		t.Fatalf("HEAD /stream: %d, %s %q, want 200 and %s", resp.StatusCode, httpapi.StartHeader, resp.Header.Get(httpapi.StartHeader), want)
	}
	if n := h.srv.RelayStats().Streams; n != 0 {
		t.Fatalf("a HEAD holds %d streams", n)
	}
	// The next request on the connection is answered, with nothing between.
	get, _ := http.NewRequest("GET", h.ts.URL+"/healthz", nil)
	if err := get.Write(conn); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, err := http.ReadResponse(br, get); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the request after the HEAD: %v %v", resp, err)
	}
}

// A stream cut off before its first frame has given its client no frame id
// to resume with; the answer's header gives the position it started after,
// and resuming from it misses nothing.
func TestStreamCutOffBeforeItsFirstFrameResumesFromItsStart(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	ann := token(t, "ann")
	h.post(ann, "?wait=settled", add("before", "a", 1), http.StatusOK)

	s := h.openStream("", "Authorization", "Bearer "+ann)
	start := s.resp.Header.Get(httpapi.StartHeader)
	if want := strconv.FormatInt(h.e.Head(), 10); start != want {
		t.Fatalf("%s: %q, want the head, %s", httpapi.StartHeader, start, want)
	}
	s.close()

	h.post(ann, "?wait=settled", add("meanwhile", "a", 1), http.StatusOK)
	s = h.openStream("", "Authorization", "Bearer "+ann, "Last-Event-ID", start)
	var o outcomeFrame
	for o.ID != "meanwhile" {
		f := s.next(t)
		if f.Event != "outcome" {
			continue
		}
		if err := json.Unmarshal([]byte(f.Data), &o); err != nil {
			t.Fatal(err)
		}
		if o.ID != "meanwhile" {
			t.Fatalf("first outcome after the start is %s, want meanwhile", o.ID)
		}
	}
	if got := s.resp.Header.Get(httpapi.StartHeader); got != start {
		t.Fatalf("resumed stream's %s: %q, want %s", httpapi.StartHeader, got, start)
	}
}

// A stream may take its token from a cookie it names, one of many a browser
// holds for the streams of its tabs: the one named, not another's, and only
// for the stream.
func TestStreamTakesItsTokenFromTheCookieItNames(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	ann, bob := token(t, "ann"), token(t, "bob")
	from := strconv.FormatInt(h.e.Head(), 10)
	jar := "plait_token_annStream01=" + ann + "; plait_token_bobStream02=" + bob + "; plait_token=" + bob
	annNotes := h.openStream("?types=note&access_cookie=annStream01&lastEventId="+from, "Cookie", jar)
	bobNotes := h.openStream("?types=note&access_cookie=bobStream02&lastEventId="+from, "Cookie", jar)
	h.post(ann, "", note("a1", "n-ann", "ann's"), http.StatusAccepted)
	h.post(bob, "", note("b1", "n-bob", "bob's"), http.StatusAccepted)
	if f := annNotes.next(t); !strings.Contains(f.Data, `"n-ann"`) {
		t.Fatalf("ann's first frame %+v, want her note's event", f)
	}
	if f := bobNotes.next(t); !strings.Contains(f.Data, `"n-bob"`) {
		t.Fatalf("bob's first frame %+v, want his note's event", f)
	}
	for _, tc := range []struct{ target, cookie string }{
		{"/stream?access_cookie=annStream01", "plait_token_other0001=" + ann}, // not the one named
		{"/stream?access_cookie=short", "plait_token_short=" + ann},
		{"/stream?access_cookie=annStream01", "plait_token_annStream01="},
		{"/stream?access_cookie=annStream01", "plait_token_annStream01=forged"},
		{"/lists/counter", "plait_token_annStream01=" + ann}, // the stream's alone
	} {
		problem(t, h.do("GET", tc.target, "", nil, "Cookie", tc.cookie), http.StatusUnauthorized, "")
	}
}
