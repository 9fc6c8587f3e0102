package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/relay"
)

// StartHeader is the header of a GET /stream answer that holds the
// position the stream starts after: sent as Last-Event-ID, it resumes the
// stream with nothing missed by a client cut off before the first frame.
const StartHeader = "Plait-Last-Event-ID"

// getStream is GET /stream?types=a,b: the relay of outcomes and events the
// user may see, as Server-Sent Events, from the position in Last-Event-ID
// (or ?lastEventId= or ?Last-Event-ID=) or from now.
func (s *Server) getStream(w http.ResponseWriter, r *http.Request) {
	// The stream ends when the token expires: the client comes back with
	// a fresh one, or not at all.
	user, until, p := s.userUntil(r, queryToken)
	if p == nil {
		// Counted as a request until it is a stream (a resume from
		// beyond the head waits for it), counted as a stream from then on.
		p = s.holdRequest(r, user)
	}
	if p != nil {
		writeProblem(w, p)
		return
	}
	if !s.running() {
		writeProblem(w, newProblem(http.StatusServiceUnavailable, slugUnavailable, "the engine is not running"))
		return
	}
	q, p := query(r)
	if p != nil {
		writeProblem(w, p)
		return
	}
	var types map[string]bool
	if v := q.Get("types"); v != "" {
		types = map[string]bool{}
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if _, ok := s.defs[t]; !ok {
				writeProblem(w, newProblem(http.StatusBadRequest, slugInvalidRequest, fmt.Sprintf("types: no aggregate type %q", t),
					plait.FieldError{Path: "types", Code: CodeUnknownType, Message: fmt.Sprintf("no aggregate type %q", t)}))
				return
			}
			types[t] = true
		}
	}
	head := s.e.Head()
	from := head
	// The header, else the query parameter of a client that cannot set
	// it, by either name. Empty, either is a stream from now.
	param := "Last-Event-ID"
	token := r.Header.Get(param)
	resume := token != ""
	for _, name := range []string{"lastEventId", "Last-Event-ID"} {
		if !resume && q.Get(name) != "" {
			token, param, resume = q.Get(name), name, true
		}
	}
	if resume {
		pos, err := relay.ParseToken(token)
		if err != nil {
			writeProblem(w, badParam(param, "want the id of a frame this stream sent"))
			return
		}
		if pos > head {
			// Scaled out, it may be a position of the shared feed that
			// this instance has yet to read: give it a moment.
			ctx, cancel := context.WithTimeout(r.Context(), resumeWait)
			head, err = s.e.AwaitHead(ctx, pos)
			cancel()
			if err != nil {
				// The store has it, or could not tell: come back, rather
				// than be told the position is wrong (an EventSource
				// gives up on a 400).
				s.log.DebugContext(r.Context(), "stream: resume position not read yet", "position", pos, "error", err)
				p := newProblem(http.StatusServiceUnavailable, slugUnavailable, fmt.Sprintf("position %d is not read here yet; try again", pos))
				p.retryAfter = 1
				writeProblem(w, p)
				return
			}
		}
		if pos > head {
			writeProblem(w, badParam(param, fmt.Sprintf("position %d is beyond the last one, %d", pos, head)))
			return
		}
		from = pos
	}

	if r.Method == http.MethodHead {
		// The headers of the stream, and no stream: a client that cannot
		// read the headers of its EventSource learns here the position to
		// resume from should its stream end before its first frame.
		setStreamHeaders(w.Header(), from)
		w.WriteHeader(http.StatusOK)
		return
	}
	s.streamsMu.Lock()
	closed := s.streamsClosed
	s.streamsMu.Unlock()
	if closed {
		writeProblem(w, newProblem(http.StatusServiceUnavailable, slugUnavailable, "the server is shutting down"))
		return
	}
	release, p := s.holdStream(user)
	if p != nil {
		writeProblem(w, p)
		return
	}
	s.releaseRequest(r)
	hub := s.hub()
	sub := s.subscription(user, types)
	sub.Until = until

	h := w.Header()
	setStreamHeaders(h, from)
	h.Set("X-Accel-Buffering", "no")
	if r.ProtoMajor == 1 {
		// Over HTTP/1 the hub takes the connection over, so that an idle
		// stream holds no goroutine, net/http buffers or request of its
		// own: the body is then the raw frames, ended by closing the
		// connection, as the SSE specification recommends.
		h.Set("Transfer-Encoding", "identity")
		w.WriteHeader(http.StatusOK)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			s.metrics.streams.Inc()
			hub.Attach(conn, from, sub, func(err error) {
				s.metrics.streams.Dec()
				release()
				if err != nil {
					s.log.LogAttrs(context.Background(), slog.LevelDebug, "stream ended", slog.String("user", user.ID), slog.Any("error", err))
				}
			})
			return
		}
	} else {
		w.WriteHeader(http.StatusOK)
	}

	// The connection cannot be taken over (HTTP/2): the stream runs in
	// this goroutine.
	defer release()
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sink := &responseSink{w: w, rc: http.NewResponseController(w), timeout: s.streamWriteTimeout}
	// When the stream is closed, a write blocked on a client that stopped
	// reading is cut at once rather than at its deadline. At the end, the
	// deadline is cleared: without a server-wide WriteTimeout, net/http
	// would keep it for the connection's next request.
	cut := make(chan struct{})
	stopCut := context.AfterFunc(ctx, func() {
		defer close(cut)
		sink.rc.SetWriteDeadline(time.Now())
	})
	defer func() {
		if !stopCut() {
			<-cut
		}
		sink.rc.SetWriteDeadline(time.Time{})
	}()
	err := hub.Stream(ctx, sink, from, sub)
	cancel() // cuts a write still blocked
	if err != nil && r.Context().Err() == nil {
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "stream ended", slog.String("user", user.ID), slog.Any("error", err))
	}
}

// setStreamHeaders sets the headers of a stream that sends the frames after
// position from.
func setStreamHeaders(h http.Header, from int64) {
	h.Set("Content-Type", "text/event-stream")
	// A user's outcomes and events, whose EventSource authenticates with
	// a cookie, which does not keep shared caches away as Authorization
	// does: no cache stores it.
	h.Set("Cache-Control", "no-store")
	// Until its first frame, a stream has given its client no id to resume
	// with; this is that id: the position the stream sends frames after.
	h.Set(StartHeader, strconv.FormatInt(from, 10))
}

// sseState is the server's part of the relay: the hub that serves every
// stream, and how many streams each user holds.
type sseState struct {
	once   sync.Once
	hub    *relay.Hub
	access map[string]plait.Access // aggregate type → its access rules

	perUser *userCounts // nil when streams are not capped
}

// resumeWait bounds how long a stream resumed from a position beyond this
// instance's head waits for it: scaled out, the position may be one
// another instance has sent, which this one reads within a poll.
const resumeWait = 5 * time.Second

// DefaultMaxStreamsPerUser is how many SSE streams one user may hold open
// at once, with Auth, unless Options.MaxStreamsPerUser says otherwise.
const DefaultMaxStreamsPerUser = 16

// CodeTooManyStreams is the code of the field error of the 429 problem
// that refuses a stream to a user who holds the most allowed.
const CodeTooManyStreams = "too_many_streams"

// streamRetryAfter is the Retry-After of a stream refused because its user
// holds too many, in seconds.
const streamRetryAfter = 5

// hub returns the server's relay hub, made on first use.
func (s *Server) hub() *relay.Hub {
	s.sse.once.Do(func() {
		s.sse.access = make(map[string]plait.Access, len(s.defs))
		for t, d := range s.defs {
			s.sse.access[t] = d.Settings().Access
		}
		s.sse.hub = relay.NewHub(s.e, relay.HubOptions{
			Route:        s.route,
			Heartbeat:    s.opts.Heartbeat,
			WriteTimeout: s.streamWriteTimeout,
		})
	})
	return s.sse.hub
}

// RelayStats returns the counters of the hub that serves the SSE streams.
func (s *Server) RelayStats() relay.HubStats { return s.hub().Stats() }

// holdStream counts a stream of the user, or answers 429 when the user
// holds Options.MaxStreamsPerUser already. release uncounts it; it may be
// called more than once.
func (s *Server) holdStream(user plait.User) (release func(), p *Problem) {
	release, n, ok := s.sse.perUser.hold(user.ID)
	if !ok {
		msg := fmt.Sprintf("%d streams are open for this user, the most allowed: close one first", n)
		p := newProblem(http.StatusTooManyRequests, slugTooManyRequests, msg,
			plait.FieldError{Path: "", Code: CodeTooManyStreams, Message: msg})
		p.retryAfter = streamRetryAfter
		return nil, p
	}
	return release, nil
}

// route gives each feed item its routing keys: its aggregate type, seen by
// every user who sees all instances of the type, and for an owner-only
// type the type and owner, seen by the owner (an empty owner by every
// user).
func (s *Server) route(it engine.Item, keys []string) []string {
	typ := relay.ItemType(it)
	keys = append(keys, typ)
	if s.sse.access[typ].ByOwner() {
		owner := itemOwner(it)
		keys = append(keys, typ+"\x00"+owner)
		// The outcome of a command that gave the instance another owner
		// (plait.Access.OwnerField) reaches its sender too.
		if it.Outcome != nil && it.Outcome.Command.User != owner && it.Outcome.Command.CausationID == "" {
			keys = append(keys, typ+"\x00"+it.Outcome.Command.User)
		}
		// The events that took the instance away from its owner reach
		// that owner too, the last of it they see.
		if it.Event != nil && it.FormerOwner != "" && it.FormerOwner != owner {
			keys = append(keys, typ+"\x00"+it.FormerOwner)
		}
	}
	return keys
}

// subscription is what a user's stream of the given types (all if nil)
// receives: the routing keys that reach the user (see route), and the
// access rules once more, item by item.
func (s *Server) subscription(user plait.User, types map[string]bool) relay.Subscription {
	var keys []string
	for t, a := range s.sse.access {
		if types != nil && !types[t] {
			continue
		}
		switch {
		case a.SeesAll(user):
			keys = append(keys, t)
		case a.ByOwner():
			keys = append(keys, t+"\x00"+user.ID, t+"\x00")
		}
	}
	if keys == nil {
		keys = []string{} // nil would subscribe to the key ""
	}
	return relay.Subscription{Keys: keys, Filter: s.feedFilter(user, types)}
}

// itemOwner is the owner of the instance an item concerns; for a rejected
// creation, the sender.
func itemOwner(it engine.Item) string {
	if it.Owner == "" && it.Outcome != nil {
		return it.Outcome.Command.User
	}
	return it.Owner
}

// feedFilter lets through the items of the given types (all if nil) that
// the user may see. The hub calls it for every item routed to a stream, so
// what it needs is worked out beforehand.
func (s *Server) feedFilter(user plait.User, types map[string]bool) relay.Filter {
	type rule struct {
		typ     string
		access  plait.Access
		seesAll bool
	}
	var rules []rule
	for t, a := range s.sse.access {
		if types == nil || types[t] {
			rules = append(rules, rule{t, a, a.SeesAll(user)})
		}
	}
	return func(it engine.Item) bool {
		typ := relay.ItemType(it)
		for _, r := range rules {
			if r.typ == typ {
				// The sender of a command sees its outcome, as
				// maySeeOutcome lets them; the former owner of an
				// instance, the events that moved it away.
				return r.seesAll || r.access.MaySee(user, itemOwner(it)) ||
					it.Outcome != nil && sentBy(it.Outcome.Command, user) ||
					it.Event != nil && it.FormerOwner != "" && r.access.MaySee(user, it.FormerOwner)
			}
		}
		return false
	}
}

// responseSink writes a stream's frames to the response, each write bounded
// by a deadline so that a client that stopped reading is cut loose.
type responseSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (s *responseSink) Write(p []byte) (int, error) {
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	return s.w.Write(p)
}

func (s *responseSink) Flush() error {
	return s.rc.Flush()
}
