// Command devkafka runs a Kafka broker in one process, for trying Plait's
// scaled-out deployment on one machine without installing Kafka:
//
//	go run ./cmd/devkafka --data ./devkafka-data &
//	go run ./cmd/plait serve --kafka 127.0.0.1:9092 --postgres postgres://localhost/orderdesk
//
// The broker is franz-go's kfake, the one Plait's own tests run against.
// It speaks enough of Kafka's protocol for Plait (transactions, consumer
// groups, idempotent produce) but is no production broker: one node, no
// replication, no security. Without --data it keeps its log in memory, lost
// when it stops; with --data the log is written to that directory, each
// produce synced before it is acknowledged, and a restart goes on from it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	err := run(os.Args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "devkafka:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("devkafka", flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintln(out, "Usage: devkafka [--port 9092] [--data DIR]\n\nRuns a one-node Kafka broker in this process, for trying plait serve --kafka on one machine; not for production.\n\nFlags:")
		// Named with two dashes, as plait's are (either is taken).
		var b strings.Builder
		fs.SetOutput(&b)
		fs.PrintDefaults()
		fs.SetOutput(out)
		fmt.Fprint(out, strings.ReplaceAll("\n"+b.String(), "\n  -", "\n  --")[1:])
	}
	port := fs.Int("port", 9092, "the `port` to listen on, on 127.0.0.1 (0: any free one)")
	data := fs.String("data", "", "keep the log in this `directory` across restarts (default: in memory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	// Topics a client names are created, as a Kafka broker does by default.
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(*port), kfake.AllowAutoTopicCreation()}
	if *data != "" {
		if err := os.MkdirAll(*data, 0o755); err != nil {
			return err
		}
		opts = append(opts, kfake.DataDir(*data), kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start the broker: %w", err)
	}
	defer c.Close()
	where := "in memory"
	if *data != "" {
		where = "in " + *data
	}
	fmt.Printf("devkafka: a broker on %s, its log %s; plait serve --kafka %[1]s\n", strings.Join(c.ListenAddrs(), ","), where)
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) { // as under nohup
		sigs = append(sigs, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	<-ctx.Done()
	return nil
}
