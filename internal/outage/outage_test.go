package outage

import (
	"testing"
	"time"
)

// TestOutageBacksOffAndLogsOncePerRepeat: the waits double from Min to
// Max, the run is logged at its first failure and again once Repeat has
// passed, and a success ends it, reporting how long it lasted, so that the
// next failure starts a new run at Min.
func TestOutageBacksOffAndLogsOncePerRepeat(t *testing.T) {
	o := Outage{Min: 20 * time.Millisecond, Max: time.Second, Repeat: 30 * time.Second}
	now := time.Unix(1000, 0)
	var waits []time.Duration
	logged := 0
	for range 10 {
		wait, log := o.Fail(now)
		waits = append(waits, wait)
		if log {
			logged++
		}
		now = now.Add(wait)
	}
	want := []time.Duration{20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000}
	for i, w := range want {
		if waits[i] != w*time.Millisecond {
			t.Fatalf("waits %v, want %v ms", waits, want)
		}
	}
	if logged != 1 {
		t.Fatalf("%d failures logged within the first %s, want 1", logged, 30*time.Second)
	}
	if _, log := o.Fail(now.Add(30 * time.Second)); !log {
		t.Fatal("the run is not logged again after Repeat")
	}
	lasted, attempts, ended := o.Succeed(now.Add(31 * time.Second))
	if !ended || attempts != 11 || lasted != 36260*time.Millisecond {
		t.Fatalf("Succeed: lasted %s, %d attempts, ended %v", lasted, attempts, ended)
	}
	if _, _, ended := o.Succeed(now); ended {
		t.Fatal("a second success ended a run again")
	}
	if wait, log := o.Fail(now); wait != o.Min || !log {
		t.Fatalf("a new run starts with wait %s, logged %v; want %s, logged", wait, log, o.Min)
	}
}
