package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"text/tabwriter"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

func runInspect(ctx context.Context, prog program, args []string, stdout, stderr io.Writer) error {
	app := prog.app
	fs := flags(prog, "inspect", "Shows the store's log head, its streams (each aggregate type's instances and events), and each subscription's checkpoint and lag (embedded: the events of its types after its checkpoint, up to the head).\nWith --kafka and --postgres, the scaled-out deployment's (lag: the positions behind the head): also each partition its consumer group consumes, with the offset handled, the end offset, the lag and the owner.", stdout)
	var sf storeFlags
	sf.register(fs)
	var sc inspectScaledFlags
	sc.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	if sc.set() {
		return runInspectScaled(ctx, app, sc, stdout)
	}
	if err := sf.existing(app); err != nil {
		return err
	}
	st, err := sf.read(ctx, app)
	if err != nil {
		return err
	}
	defer st.Close()
	cps, head, counts, err := readStatus(ctx, st)
	if err != nil {
		return err
	}
	// A reactor's lag is the events of its types after its checkpoint: a
	// checkpoint behind the head by events it does not consume has nothing
	// to do.
	lags := map[string]int64{}
	for _, r := range app.Reactors {
		name := engine.ReactorCheckpoint(r.Name())
		if lags[name], err = st.EventsAfter(ctx, cps[name], head, r.Subscriptions()); err != nil {
			return err
		}
	}
	last, err := st.LastItem(ctx)
	if err != nil {
		return err
	}
	given := ""
	if last < head {
		given = fmt.Sprintf(" (given by the store a restore replaced; the log's last item is at %d)", last)
	}
	fmt.Fprintf(stdout, "application %s\nstore       %s\nlog head    %d%s\n\n", app.Name, sf.path(app), head, given)
	printAggregates(stdout, app, func(typ string) (int64, int64) { c := counts[typ]; return c.Instances, c.Events })
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBSCRIPTION\tCHECKPOINT\tLAG")
	names := make([]string, 0, len(app.Reactors))
	for _, r := range app.Reactors {
		names = append(names, engine.ReactorCheckpoint(r.Name()))
	}
	for n := range cps {
		if !slices.Contains(names, n) {
			names = append(names, n)
			lags[n] = max(head-cps[n], 0) // a subscription the application no longer has
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", n, cps[n], lags[n])
	}
	return tw.Flush()
}

// printAggregates writes the table of the application's streams, one per
// aggregate type, with the instances and events count gives for each, and
// a blank line.
func printAggregates(w io.Writer, app plait.App, count func(typ string) (instances, events int64)) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM (AGGREGATE TYPE)\tKIND\tINSTANCES\tEVENTS")
	for _, d := range app.Aggregates {
		kind := "aggregate"
		if d.Settings().View {
			kind = "view"
		}
		instances, events := count(d.Type())
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", d.Type(), kind, instances, events)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// statusReader is what inspect reads of a store, embedded or scaled out.
type statusReader interface {
	Checkpoints(ctx context.Context) (map[string]int64, error)
	Head(ctx context.Context) (int64, error)
	Counts(ctx context.Context) (map[string]engine.TypeCount, error)
}

// readStatus reads the store's checkpoints, its log head and each type's
// counts. The checkpoints are read first: read after the head, they could
// be ahead of it.
func readStatus(ctx context.Context, st statusReader) (cps map[string]int64, head int64, counts map[string]engine.TypeCount, err error) {
	if cps, err = st.Checkpoints(ctx); err != nil {
		return nil, 0, nil, err
	}
	if head, err = st.Head(ctx); err != nil {
		return nil, 0, nil, err
	}
	if counts, err = st.Counts(ctx); err != nil {
		return nil, 0, nil, err
	}
	return cps, head, counts, nil
}
