package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

func runReplay(ctx context.Context, prog program, args []string, stdout, stderr io.Writer) error {
	app := prog.app
	fs := flags(prog, "replay", "Rebuilds a view from the event log into a fresh copy while the old copy keeps serving, then swaps them.\nWhen a server runs on the data directory, or with --server (any deployment, scaled out included), the rebuild runs inside the server, through its API.\nWith --aggregate, rebuilds the materialized state (the snapshots) of an aggregate type by folding its events, through the upcasters.", stdout)
	var sf storeFlags
	sf.register(fs)
	view := fs.String("view", "", "the view to rebuild through the reactors")
	aggregate := fs.String("aggregate", "", "the aggregate `type` whose materialized states to rebuild by folding its events")
	server := fs.String("server", "", "rebuild the view through the server at this base `URL` (http://host:port), embedded or scaled out, instead of the data directory")
	token := fs.String("token", "", "bearer token for a server that requires auth (default $PLAIT_TOKEN)")
	// Scaled out, the rebuild runs in a server: --kafka and --postgres are
	// taken only to say so.
	kafkaFlag := fs.String("kafka", "", "not taken: scaled out, give --server")
	postgresFlag := fs.String("postgres", "", "not taken: scaled out, give --server")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	switch {
	case *kafkaFlag != "" || *postgresFlag != "":
		return usageError{errors.New("scaled out, a view is rebuilt inside a running instance, which stops its own writes for the swap: give --server URL of one instead of --kafka and --postgres")}
	case *view == "" && *aggregate == "":
		return usageError{errors.New("one of --view and --aggregate is required")}
	case *view != "" && *aggregate != "":
		return usageError{errors.New("give --view or --aggregate, not both")}
	case *view != "":
		if def, ok := app.Definition(*view); !ok || !def.Settings().View {
			return usageError{fmt.Errorf("%s has no view %q (its views: %s)", app.Name, *view, typesOf(app, true))}
		}
	default:
		if _, ok := app.Definition(*aggregate); !ok {
			return usageError{fmt.Errorf("%s has no aggregate type %q (its types: %s)", app.Name, *aggregate, typesOf(app, false))}
		}
	}
	if *view != "" {
		noteFeeds(stdout, app, *view)
	}
	if *server != "" {
		if *aggregate != "" {
			return usageError{errors.New("--aggregate runs on the data directory, not through --server")}
		}
		base, err := serverURL(*server)
		if err != nil {
			return err
		}
		return replayRemote(ctx, base, *view, tokenOr(*token), stdout)
	}
	if err := sf.existing(app); err != nil {
		return err
	}
	lock, err := lockData(sf.data, app.Name)
	if url, locked := lockedBy(err); locked {
		switch {
		case *aggregate != "":
			return fmt.Errorf("%w: stop it first to replay an aggregate type", err)
		case url == "":
			return fmt.Errorf("%w: try again once it is done, or use --server", err)
		}
		fmt.Fprintf(stdout, "a server runs on this data directory: rebuilding through %s\n", url)
		return replayRemote(ctx, url, *view, tokenOr(*token), stdout)
	}
	if err != nil {
		return err
	}
	defer lock.release()
	return sf.withEngine(ctx, app, stderr, func(e *engine.Engine) error {
		if *aggregate != "" {
			p, err := e.Replay(ctx, *aggregate, func(p engine.Progress) { printProgress(stdout, p) })
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "replayed %s: %d events folded into %d instances, in %s (writes paused %s)\n",
				p.Type, p.Events, p.Instances, p.Elapsed.Round(1e6), p.Paused.Round(1e5))
			return nil
		}
		p, err := e.Rebuild(ctx, *view, func(p engine.Progress) { printProgress(stdout, p) })
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rebuilt %s: %d events replayed, %d instances, in %s (writes paused %s)\n",
			p.Type, p.Events, p.Instances, p.Elapsed.Round(1e6), p.Paused.Round(1e5))
		return nil
	})
}

// printProgress writes one progress report. The swapping report comes as
// writes pause; its figures are those of the replay done before, none for
// a log short enough to replay whole in the pause, so it says what happens
// instead, and the lines after it give the figures.
func printProgress(w io.Writer, p engine.Progress) {
	if p.Phase == "swapping" {
		fmt.Fprintf(w, "%-9s %s: writes paused to replay the rest of the log and swap the new copy in, %s\n",
			p.Phase, p.Type, p.Elapsed.Round(1e6))
		return
	}
	pct := 100.0
	if p.Head > 0 {
		pct = 100 * float64(p.Position) / float64(p.Head)
	}
	fmt.Fprintf(w, "%-9s %s: position %d of %d (%.0f%%), %d events, %d instances, %s\n",
		p.Phase, p.Type, p.Position, p.Head, pct, p.Events, p.Instances, p.Elapsed.Round(1e6))
}

// typesOf lists the application's aggregate types, or its views only.
func typesOf(app plait.App, views bool) string {
	var names []string
	for _, d := range app.Aggregates {
		if !views || d.Settings().View {
			names = append(names, d.Type())
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// noteFeeds says, of a view whose events reactors consume, that a rebuild
// reaches them not: it replaces the view's states, and its events, which
// those reactors made their commands of, stay in the log as they were. A
// change to the view's code that should reach them reaches only the events
// it makes from now on.
func noteFeeds(w io.Writer, app plait.App, view string) {
	var names []string
	for _, r := range app.Reactors {
		if slices.Contains(r.Types(), view) {
			names = append(names, r.Name())
		}
	}
	if len(names) == 0 {
		return
	}
	they := "they"
	if len(names) == 1 {
		they = "it"
	}
	fmt.Fprintf(w, "note: the events of %s feed the reactor %s: a rebuild replaces the states of %s, not its events, so what %s made of them stands\n",
		view, strings.Join(names, ", "), view, they)
}
