package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/plaithq/plait/internal/outage"
)

// The waits between attempts to reach a dependency at start: short at
// first, for one starting beside this process, then longer.
const (
	startRetryMin = 100 * time.Millisecond
	startRetryMax = 2 * time.Second
)

// dialUntil runs open until it succeeds, fails in a way that trying again
// cannot mend, or start ends. While the dependency cannot be reached (it
// may be starting, as a container started beside this one), open is tried
// again after a short wait, and the wait is logged once, saying what this
// process waits for, and again when it answers. A configuration error (a
// malformed URL, a refused password, a missing database) fails at once.
// timeout is start's, for the error that ends the wait; what names the
// dependency in the log.
func dialUntil(start context.Context, log *slog.Logger, what string, timeout time.Duration, open func(context.Context) error) error {
	wait := outage.Outage{Min: startRetryMin, Max: startRetryMax}
	var unreached error // the last attempt's that found the dependency unreachable
	for {
		err := open(start)
		if err == nil {
			wait.Recovered(log, "start: "+what+" answers")
			return nil
		}
		if start.Err() != nil {
			if errors.Is(start.Err(), context.DeadlineExceeded) {
				if unreached != nil && errors.Is(err, context.DeadlineExceeded) {
					err = unreached // the attempt cut short says less than the one before
				}
				return fmt.Errorf("no answer within --start-timeout %s: %w", timeout, err)
			}
			return err
		}
		if !unreachable(err) {
			return err
		}
		unreached = err
		d := wait.Failed(log, slog.LevelWarn, "start: waiting for "+what, err, "timeout", timeout.String())
		select {
		case <-time.After(d):
		case <-start.Done():
		}
	}
}

// unreachable reports whether err says the dependency could not be reached
// or is not ready yet, which waiting may mend: the connection refused,
// reset or cut, no route to the host, its name not resolved yet, or a
// PostgreSQL server still starting.
func unreachable(err error) bool {
	var dns *net.DNSError
	var pg *pgconn.PgError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &dns):
		return true
	case errors.As(err, &pg):
		return pg.Code == "57P03" // cannot_connect_now: the database system is starting up
	}
	return false
}
