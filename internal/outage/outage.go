// Package outage paces a loop that retries a dependency through a run of
// failures: how long to wait before the next attempt, and when to log, so
// that an outage is logged when it begins, now and then while it lasts,
// and once when it ends, not on every attempt.
package outage

import (
	"context"
	"log/slog"
	"time"
)

// DefaultRepeat is the default of Outage.Repeat.
const DefaultRepeat = 30 * time.Second

// Outage follows a run of consecutive failures of one loop's attempts. The
// wait before the next attempt starts at Min and doubles with each failure
// up to Max; a success ends the run and the next failure starts at Min
// again. An Outage is used by one goroutine at a time.
type Outage struct {
	// Min is the wait after the first failure of a run.
	Min time.Duration
	// Max caps the wait.
	Max time.Duration
	// Repeat is how often a lasting run is logged again (default
	// DefaultRepeat).
	Repeat time.Duration

	began    time.Time // the run's first failure; zero while none
	logged   time.Time // when the run was last logged
	attempts int       // failures in the run
	wait     time.Duration
}

// Fail records a failed attempt at now. It returns how long to wait before
// the next attempt, and whether to log this failure: the first of a run, or
// the first once Repeat has passed since the run was last logged.
func (o *Outage) Fail(now time.Time) (wait time.Duration, log bool) {
	repeat := o.Repeat
	if repeat <= 0 {
		repeat = DefaultRepeat
	}
	o.attempts++
	if o.began.IsZero() {
		o.began, o.logged, o.wait = now, now, o.Min
		return o.wait, true
	}
	o.wait = min(max(2*o.wait, o.Min), o.Max)
	if now.Sub(o.logged) >= repeat {
		o.logged = now
		return o.wait, true
	}
	return o.wait, false
}

// Succeed records a successful attempt at now. It returns how long the run
// of failures it ends lasted and how many attempts failed, and whether it
// ended one.
func (o *Outage) Succeed(now time.Time) (lasted time.Duration, attempts int, ended bool) {
	if o.began.IsZero() {
		return 0, 0, false
	}
	lasted, attempts = now.Sub(o.began), o.attempts
	*o = Outage{Min: o.Min, Max: o.Max, Repeat: o.Repeat}
	return lasted, attempts, true
}

// Failing reports whether a run of failures is under way.
func (o *Outage) Failing() bool { return !o.began.IsZero() }

// Failed is Fail at the present time that logs what failed to log: msg at
// level with err on the run's first failure, and again, with how long the
// run has lasted and how many attempts failed, at most every Repeat while
// it lasts. It returns how long to wait before the next attempt.
func (o *Outage) Failed(log *slog.Logger, level slog.Level, msg string, err error, attrs ...any) time.Duration {
	now := time.Now()
	wait, logIt := o.Fail(now)
	if !logIt {
		return wait
	}
	attrs = append(attrs, "error", err)
	if o.attempts > 1 {
		attrs = append(attrs, "failing_for", Round(now.Sub(o.began)).String(), "attempts", o.attempts)
		msg += "; still failing"
	}
	log.Log(context.Background(), level, msg, attrs...)
	return wait
}

// Recovered is Succeed at the present time that logs msg at INFO, with how
// long the run of failures lasted and how many attempts failed, when it
// ends one.
func (o *Outage) Recovered(log *slog.Logger, msg string, attrs ...any) {
	lasted, attempts, ended := o.Succeed(time.Now())
	if !ended {
		return
	}
	log.Info(msg, append(attrs, "failed_for", Round(lasted).String(), "attempts", attempts)...)
}

// Round rounds a duration for a log line: to the millisecond, or to the
// microsecond below one.
func Round(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}
