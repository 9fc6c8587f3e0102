package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestSoakShort is the soak's short variant: twenty seconds of commands,
// queries and SSE streams at half the maximum command rate, on an engine
// whose in-memory tail and caches are small enough to fill within seconds.
// Nothing acknowledged may lack its outcome, no stream may miss or repeat
// one, and goroutines, open files and the live heap must stay flat.
func TestSoakShort(t *testing.T) {
	start := time.Now()
	rep, err := Soak(context.Background(), SoakOptions{
		Dir: t.TempDir(), Duration: 20 * time.Second, Interval: time.Second, MaxFor: 2 * time.Second, Streams: 8,
		Progress: testWriter{t}, tailSize: 2048, cacheSize: 256,
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Write(&b)
	t.Logf("in %s:\n%s", time.Since(start).Round(time.Millisecond), b.String())

	if rep.Acked == 0 || rep.Accepted == 0 || rep.Rejected == 0 {
		t.Errorf("%d acknowledged, %d accepted, %d rejected: want some of each", rep.Acked, rep.Accepted, rep.Rejected)
	}
	if rep.Lost() || rep.Accepted+rep.Rejected != rep.Acked {
		t.Errorf("lost: %d without an outcome %v, auditor missed %d, repeated %d, streams repeated %d", rep.Missing, rep.MissingIDs, rep.AuditorMissing, rep.AuditorRepeats, rep.StreamRepeats)
	}
	if rep.Errors > 0 {
		t.Errorf("%d requests failed", rep.Errors)
	}
	if rep.Reconnects < 8 {
		t.Errorf("%d reconnections, want the streams to resume several times", rep.Reconnects)
	}
	f, ok := rep.Flatness()
	if !ok {
		t.Fatalf("%d samples: too few", len(rep.Samples))
	}
	// A leak of one goroutine, file or kilobyte per request would grow
	// these by thousands over the run. On a shared machine a slow second
	// makes the load generator open more connections, each a file and a
	// few goroutines (server, client reader and writer): growth those
	// explain is no leak.
	if f.FDs[1] > f.FDs[0]*1.5+20 {
		t.Errorf("open files grew from %.0f to %.0f", f.FDs[0], f.FDs[1])
	}
	if grown, conns := f.Goroutines[1]-f.Goroutines[0], max(0, f.FDs[1]-f.FDs[0]); grown > 3*conns+f.Goroutines[0]*0.2+20 {
		t.Errorf("goroutines grew from %.0f to %.0f, open files from %.0f to %.0f", f.Goroutines[0], f.Goroutines[1], f.FDs[0], f.FDs[1])
	}
	if f.Heap[1] > f.Heap[0]*1.5+(8<<20) {
		t.Errorf("the live heap grew from %.1f to %.1f MiB", f.Heap[0]/(1<<20), f.Heap[1]/(1<<20))
	}
	// On a shared machine a second can pass with no command done; a stall
	// is several in a row.
	idle := 0
	for _, s := range rep.Samples {
		if s.Commands == 0 {
			idle++
		} else {
			idle = 0
		}
		if idle >= 4 || s.OutcomeP99 > 10*time.Second {
			t.Errorf("sample at %s: %d commands (%d idle samples in a row), outcome p99 %s", s.At, s.Commands, idle, s.OutcomeP99)
		}
	}
}
