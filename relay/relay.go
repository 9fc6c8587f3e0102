package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/plaithq/plait/engine"
)

// Source is the feed a stream follows. *engine.Engine implements it.
type Source interface {
	// ReadFeed returns up to limit items after position after, in order.
	ReadFeed(ctx context.Context, after int64, limit int) ([]engine.Item, error)
	// FeedChanged returns a channel closed when the next items are
	// published. A reader takes it before each read, so no item slips past.
	FeedChanged() <-chan struct{}
}

// Sink receives the encoded frames of one stream. A Sink over a network
// connection should bound how long a Write or Flush may block, so that a
// stuck client is cut loose.
type Sink interface {
	io.Writer
	// Flush pushes what was written to the client.
	Flush() error
}

// Filter reports whether an item goes to the stream. It is called once per
// item, in position order, from the stream's goroutine.
type Filter func(engine.Item) bool

// flushAt is how many encoded bytes a stream buffers before it writes them,
// so one page of large frames never sits in memory whole.
const flushAt = 64 << 10

// catchUpFlush is how long frames read from the feed by a catch-up may
// wait for more before they are written, short of flushAt bytes.
const catchUpFlush = 50 * time.Millisecond

func send(sink Sink, b []byte) error {
	if _, err := sink.Write(b); err != nil {
		return fmt.Errorf("relay: write to client: %w", err)
	}
	if err := sink.Flush(); err != nil {
		return fmt.Errorf("relay: flush to client: %w", err)
	}
	return nil
}

// ErrBadToken is returned by ParseToken for a resume token that is not a
// position.
var ErrBadToken = errors.New("relay: bad resume token")

// ParseToken parses a resume token (a frame's id, as sent back in
// Last-Event-ID): a decimal position of 1 to 19 digits, nothing else.
func ParseToken(s string) (int64, error) {
	if len(s) == 0 || len(s) > 19 {
		return 0, fmt.Errorf("%w: %q: want a decimal position", ErrBadToken, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: %q: want a decimal position", ErrBadToken, s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %v", ErrBadToken, s, err)
	}
	return n, nil
}
