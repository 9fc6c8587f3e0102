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
	// published. Stream takes it before each read, so no item slips past.
	FeedChanged() <-chan struct{}
}

// Sink receives the encoded frames of one stream. Flush pushes what was
// written to the client. A Sink over a network connection should bound how
// long a Write or Flush may block, so that a stuck client is cut loose.
type Sink interface {
	io.Writer
	Flush() error
}

// Filter reports whether an item goes to the stream. It is called once per
// item, in position order, from the stream's goroutine.
type Filter func(engine.Item) bool

// Options tune a stream. The zero value is usable.
type Options struct {
	// Heartbeat is how long a stream stays silent before it sends a
	// ": ping" comment, so that proxies keep the connection (default 15s).
	Heartbeat time.Duration
	// PageSize is how many feed items one read fetches (default 256).
	PageSize int
	// Retry, when positive, is sent first as the SSE retry field: how long
	// a browser waits before it reconnects.
	Retry time.Duration
}

func (o *Options) defaults() {
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.PageSize <= 0 {
		o.PageSize = 256
	}
}

// flushAt is how many encoded bytes a stream buffers before it writes them,
// so one page of large frames never sits in memory whole.
const flushAt = 64 << 10

// Stream sends the client every item of src after position from that filter
// lets through, as SSE frames (see AppendFrame), then waits for more, with a
// heartbeat comment whenever it was silent for opts.Heartbeat. It returns
// nil when ctx ends, and an error when the feed cannot be read or the sink
// fails (the client went away or was too slow).
func Stream(ctx context.Context, src Source, sink Sink, from int64, filter Filter, opts Options) error {
	opts.defaults()
	buf := make([]byte, 0, 4096)
	if opts.Retry > 0 {
		buf = append(buf, "retry: "...)
		buf = strconv.AppendInt(buf, opts.Retry.Milliseconds(), 10)
		buf = append(buf, "\n\n"...)
	} else {
		buf = append(buf, ": connected\n\n"...)
	}
	if err := send(sink, buf); err != nil {
		return err
	}
	heartbeat := time.NewTimer(opts.Heartbeat)
	defer heartbeat.Stop()
	pos := from
	for ctx.Err() == nil {
		changed := src.FeedChanged()
		items, err := src.ReadFeed(ctx, pos, opts.PageSize)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("relay: read feed after %d: %w", pos, err)
		}
		buf = buf[:0]
		sent := false
		for _, it := range items {
			if it.Position <= pos {
				continue // never send a position twice, whatever the source does
			}
			pos = it.Position
			if filter != nil && !filter(it) {
				continue
			}
			if buf, err = AppendFrame(buf, it); err != nil {
				return fmt.Errorf("relay: encode item %d: %w", it.Position, err)
			}
			if len(buf) >= flushAt {
				if err := send(sink, buf); err != nil {
					return err
				}
				buf, sent = buf[:0], true
			}
		}
		if len(buf) > 0 {
			if err := send(sink, buf); err != nil {
				return err
			}
			sent = true
		}
		if sent {
			// Frames keep the connection alive as well as a ping does.
			heartbeat.Reset(opts.Heartbeat)
		}
		due := false
		if len(items) > 0 {
			// There may be more right away; but a feed that never runs
			// dry of items this stream does not get must not starve its
			// heartbeat.
			select {
			case <-heartbeat.C:
				due = true
			default:
				continue
			}
		} else {
			select {
			case <-ctx.Done():
			case <-changed:
			case <-heartbeat.C:
				due = true
			}
		}
		if due {
			if err := send(sink, ping); err != nil {
				return err
			}
			heartbeat.Reset(opts.Heartbeat)
		}
	}
	return nil
}

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
