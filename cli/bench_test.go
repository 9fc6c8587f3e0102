package cli

import (
	"io"
	"testing"
)

// TestBenchRelayClientsFollowQuick: without -relay-clients the bench picks
// its number (10,000, or 100 with -quick); -relay-clients 0 skips the
// relay figures; a number given is used.
func TestBenchRelayClientsFollowQuick(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int
	}{
		{nil, 0},
		{[]string{"-quick"}, 0},
		{[]string{"-quick", "-relay-clients", "0"}, -1},
		{[]string{"-relay-clients", "250"}, 250},
	} {
		opts, _, _, err := parseBench(program{name: "plait"}, c.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if opts.RelayClients != c.want {
			t.Errorf("%v: RelayClients %d, want %d", c.args, opts.RelayClients, c.want)
		}
	}
}
