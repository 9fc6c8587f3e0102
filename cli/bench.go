package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/plaithq/plait/bench"
)

func runBench(ctx context.Context, prog program, args []string, stdout, stderr io.Writer) error {
	opts, soak, sc, err := parseBench(prog, args, stdout)
	if err != nil {
		return err
	}
	opts.Progress = stderr
	if soak > 0 {
		rep, err := bench.Soak(ctx, bench.SoakOptions{Dir: opts.Dir, Duration: soak, Progress: stderr})
		if err != nil {
			return err
		}
		if err := rep.Write(stdout); err != nil {
			return err
		}
		if rep.Lost() {
			return errors.New("the soak lost acknowledged commands or frames")
		}
		return nil
	}
	if sc.set() {
		return runScaledBench(ctx, opts, sc, stdout)
	}
	return bench.Run(ctx, stdout, opts)
}

// parseBench reads bench's flags.
func parseBench(prog program, args []string, stdout io.Writer) (opts bench.Options, soak time.Duration, sc scaledBenchFlags, err error) {
	fs := flags(prog, "bench", "Measures Plait's throughput and latency, each figure beside its raw baseline measured in the same run on the same disk.\nIt measures the platform on this machine with a workload of its own (a counter aggregate, and the orderdesk demo for the view and soak figures), whichever application's binary runs it: not this application's commands.", stdout)
	fs.StringVar(&opts.Dir, "dir", "", "directory for the temporary databases (default the system's temp dir); figures are measured on its disk")
	fs.DurationVar(&opts.Duration, "duration", 0, "how long each figure is measured (default 3s)")
	fs.BoolVar(&opts.Quick, "quick", false, "a fast smoke run with rough numbers")
	fs.IntVar(&opts.RelayClients, "relay-clients", 0, fmt.Sprintf("SSE `clients` of the relay figures, opened by a load generator built with the Go toolchain (default %d, 100 with -quick; 0 skips them)", bench.DefaultRelayClients))
	fs.DurationVar(&soak, "soak", 0, "instead of the report, soak the embedded orderdesk for this `long` at half its maximum command rate, with queries and SSE streams, sampling memory, goroutines and latency")
	sc.register(fs)
	if err := parse(fs, args); err != nil {
		return opts, 0, sc, err
	}
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return opts, 0, sc, fmt.Errorf("bench: --dir: %w", err)
		}
	}
	if opts.RelayClients == 0 && given(fs, "relay-clients") {
		opts.RelayClients = -1 // skip; left at 0, bench picks its default
	}
	return opts, soak, sc, nil
}
