package httpapi

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

// deadlineWriter is a ResponseWriter that remembers its write deadline and
// fails a flush past it, as a connection does.
type deadlineWriter struct {
	header   http.Header
	deadline time.Time
	flushErr bool
}

func (w *deadlineWriter) Header() http.Header         { return w.header }
func (w *deadlineWriter) WriteHeader(int)             {}
func (w *deadlineWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *deadlineWriter) SetWriteDeadline(t time.Time) error {
	w.deadline = t
	return nil
}
func (w *deadlineWriter) FlushError() error {
	if !w.deadline.IsZero() && time.Now().After(w.deadline) {
		w.flushErr = true
		return errDeadline
	}
	return nil
}

var errDeadline = http.ErrHandlerTimeout

// TestLargeAnswerIsFlushedWithinAFreshDeadline: what is left of a large
// answer once its handler is done is pushed within a deadline of its own,
// not within what is left of the last write's, which a slow reader (or a
// handler that went on after writing) may have used up.
func TestLargeAnswerIsFlushedWithinAFreshDeadline(t *testing.T) {
	w := &deadlineWriter{header: http.Header{}}
	rec := &recorder{ResponseWriter: w, writeTimeout: 50 * time.Millisecond}
	if _, err := rec.Write(bytes.Repeat([]byte("x"), 3*smallAnswer)); err != nil {
		t.Fatal(err)
	}
	if w.deadline.IsZero() {
		t.Fatal("a large answer was written without a deadline")
	}
	time.Sleep(100 * time.Millisecond) // the last write's deadline runs out
	rec.release()
	if w.flushErr {
		t.Fatal("the rest of the answer was flushed under the last write's deadline, run out")
	}
	if w.deadline.IsZero() {
		t.Fatal("what net/http writes after the handler is under no deadline")
	}
}
