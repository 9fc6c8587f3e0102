package main

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var brokerLine = regexp.MustCompile(`a broker on ([^\s,]+),? `)

// startBroker runs the devkafka binary on a free port and returns its
// address and a function that stops it with SIGTERM and checks it exits 0.
func startBroker(t *testing.T, bin string, args ...string) (string, func()) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--port", "0"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("devkafka said nothing: %v", sc.Err())
	}
	m := brokerLine.FindStringSubmatch(sc.Text())
	if m == nil {
		t.Fatalf("devkafka said %q", sc.Text())
	}
	return m[1], func() {
		t.Helper()
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("devkafka on SIGTERM: %v", err)
		}
	}
}

// TestTheBrokerKeepsItsLogAcrossARestart: a record produced to a broker
// with --data is read back from the broker started again on that directory.
func TestTheBrokerKeepsItsLogAcrossARestart(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "devkafka")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// --help names the flags as the README does, and is no error.
	if out, err := exec.Command(bin, "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "\n  --data directory\n") {
		t.Fatalf("devkafka --help: %v\n%s", err, out)
	}
	data := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	addr, stop := startBroker(t, bin, "--data", data)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "notes", Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cl.Close()
	stop()

	addr, stop = startBroker(t, bin, "--data", data)
	defer stop()
	cl, err = kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("notes"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fetches := cl.PollFetches(ctx)
	if err := fetches.Err(); err != nil {
		t.Fatalf("consume: %v", err)
	}
	if recs := fetches.Records(); len(recs) != 1 || string(recs[0].Value) != "kept" {
		t.Fatalf("read back %d records, want the one produced before the restart", len(recs))
	}
}
