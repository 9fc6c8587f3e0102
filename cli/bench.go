package cli

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/plaithq/plait/bench"
)

func runBench(ctx context.Context, prog program, args []string, stdout, stderr io.Writer) error {
	fs := flags("bench", "Measures Plait's throughput and latency, each figure beside its raw baseline measured in the same run on the same disk.", stdout)
	var opts bench.Options
	fs.StringVar(&opts.Dir, "dir", "", "directory for the temporary databases (default the system's temp dir); figures are measured on its disk")
	fs.DurationVar(&opts.Duration, "duration", 0, "how long each figure is measured (default 3s)")
	fs.BoolVar(&opts.Quick, "quick", false, "a fast smoke run with rough numbers")
	fs.IntVar(&opts.RelayClients, "relay-clients", bench.DefaultRelayClients, "SSE `clients` of the relay figures, opened by a load generator built with the Go toolchain (0: skip them)")
	var soak time.Duration
	fs.DurationVar(&soak, "soak", 0, "instead of the report, soak the embedded orderdesk for this `long` at half its maximum command rate, with queries and SSE streams, sampling memory, goroutines and latency")
	var sc scaledBenchFlags
	sc.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	opts.Progress = stderr
	if opts.RelayClients == 0 {
		opts.RelayClients = -1
	}
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
