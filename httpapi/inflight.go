package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/plaithq/plait"
)

// DefaultMaxRequestsPerUser is how many requests one user may have in
// flight at once, with Auth, unless Options.MaxRequestsPerUser says
// otherwise: far above what a browser sends (six connections a host), and
// far below what would let one user's slow reads hold every connection to
// the store while others wait.
const DefaultMaxRequestsPerUser = 64

// CodeTooManyRequestsInFlight is the code of the field error of the 429
// problem that refuses a request to a user who has the most allowed in
// flight.
const CodeTooManyRequestsInFlight = "too_many_in_flight"

// userCounts counts what each user holds at once (streams, requests in
// flight) against a cap.
type userCounts struct {
	limit int
	mu    sync.Mutex
	n     map[string]int
}

// newUserCounts returns the counts of a cap of limit, where a negative
// limit caps nothing, and 0 caps at def with auth, nothing without (the one
// local user is then every client). It returns nil when nothing is capped.
func newUserCounts(limit, def int, auth bool) *userCounts {
	if limit < 0 || limit == 0 && !auth {
		return nil
	}
	if limit == 0 {
		limit = def
	}
	return &userCounts{limit: limit, n: map[string]int{}}
}

// hold counts one more for user, unless they hold the limit already (held,
// then, is how many they hold). release uncounts it; it may be called more
// than once. A nil userCounts holds everything.
func (c *userCounts) hold(user string) (release func(), held int, ok bool) {
	if c == nil {
		return func() {}, 0, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.n[user]; n >= c.limit {
		return nil, n, false
	}
	c.n[user]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.n[user]--; c.n[user] <= 0 {
				delete(c.n, user)
			}
		})
	}, 0, true
}

// requestSlot is where a request keeps the hold on its user's count of
// requests in flight, released once its answer is written.
type requestSlot struct {
	taken   bool
	release func()
}

type requestSlotKey struct{}

// withRequestSlot gives r a slot, when requests are counted, and returns
// what releases it.
func (s *Server) withRequestSlot(r *http.Request) (*http.Request, func()) {
	if s.inFlight == nil {
		return r, func() {}
	}
	slot := &requestSlot{}
	return r.WithContext(context.WithValue(r.Context(), requestSlotKey{}, slot)), func() {
		if slot.release != nil {
			slot.release()
		}
	}
}

// holdRequest counts the request as one of user's in flight, once per
// request, or answers 429 when they have Options.MaxRequestsPerUser in
// flight already.
func (s *Server) holdRequest(r *http.Request, user plait.User) *Problem {
	slot, _ := r.Context().Value(requestSlotKey{}).(*requestSlot)
	if slot == nil || slot.taken {
		return nil
	}
	release, n, ok := s.inFlight.hold(user.ID)
	if !ok {
		msg := fmt.Sprintf("%d requests of this user are in flight, the most allowed: wait for their answers", n)
		p := newProblem(http.StatusTooManyRequests, slugTooManyRequests, msg,
			plait.FieldError{Path: "", Code: CodeTooManyRequestsInFlight, Message: msg})
		p.retryAfter = 1
		return p
	}
	slot.taken, slot.release = true, release
	return nil
}

// releaseRequest uncounts the request from its user's in flight before its
// answer is written: a stream, from when it is one.
func (s *Server) releaseRequest(r *http.Request) {
	if slot, _ := r.Context().Value(requestSlotKey{}).(*requestSlot); slot != nil && slot.release != nil {
		slot.release()
	}
}
