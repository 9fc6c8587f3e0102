package cli

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
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

// TestBenchMakesItsDirectory: --dir names where the temporary databases
// go; a directory that is not there yet is made, rather than failing the
// run with the file system's "no such file or directory".
func TestBenchMakesItsDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "on", "fast-disk")
	if _, _, _, err := parseBench(program{name: "plait"}, []string{"--dir", dir}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("--dir %s was not made: %v", dir, err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := parseBench(program{name: "plait"}, []string{"--dir", filepath.Join(file, "sub")}, io.Discard); err == nil || !strings.Contains(err.Error(), "--dir") {
		t.Fatalf("--dir under a file: %v, want an error naming --dir", err)
	}
}

// TestBenchSaysWhatItMeasures: an application's binary has bench too, and
// its help says the figures are the platform's on a workload of its own.
func TestBenchSaysWhatItMeasures(t *testing.T) {
	var out strings.Builder
	if _, _, _, err := parseBench(program{name: "casedesk"}, []string{"--help"}, &out); err != nil && !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "not this application's commands") {
		t.Fatalf("bench --help:\n%s", out.String())
	}
}
