//go:build !race

package orderdesk_test

import "testing"

// TestRebuildOnAHundredThousandEvents is the large variant: it is left out
// of race-detector runs, which would make it take minutes, and runs in every
// plain `go test`.
func TestRebuildOnAHundredThousandEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("large log")
	}
	l := startLive(t)
	story(l, 500, 20_000, 32)
	l.settle()
	rebuildAndCompare(t, l, 100_000)
}
