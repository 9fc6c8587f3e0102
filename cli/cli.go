// Package cli turns an application into a program with Plait's whole
// command line: serve, bench, replay, inspect, forget, backup, restore and
// version. An application's main is one line:
//
//	func main() { os.Exit(cli.Main(myapp.App(), os.Args[1:])) }
//
// WithWeb adds the application's browser user interface.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/web"
)

// command is one subcommand: its name, a one-line summary and its run
// function, which parses its own flags.
type command struct {
	name, summary string
	run           func(ctx context.Context, prog program, args []string, stdout, stderr io.Writer) error
}

// program is what the command line runs: the application, and the files
// its server gives browsers.
type program struct {
	app  plait.App
	web  fs.FS
	name string // as run: plait for cmd/plait, an application's own name for its
}

// defaults is the program of app without options.
func defaults(app plait.App) program {
	return program{app: app, web: web.Client, name: "plait"}
}

// An Option configures the program Main makes.
type Option func(*program)

// WithWeb serves files at GET / and below: the application's browser user
// interface, which loads the client library, plait.js, from the same files
// (web.Files is orderdesk's, with it). Without it the server gives
// browsers plait.js alone (web.Client).
func WithWeb(files fs.FS) Option {
	return func(p *program) { p.web = files }
}

var commands = []command{
	{"serve", "serve the application over HTTP (the default)", runServe},
	{"bench", "measure Plait's throughput and latency against raw baselines, on a workload of its own", runBench},
	{"replay", "rebuild a view from the event log while the old copy serves", runReplay},
	{"inspect", "show the log, subscriptions, checkpoints and lag", runInspect},
	{"forget", "forget a data subject: destroy its key, erasing its personal data", runForget},
	{"backup", "write a consistent copy of the embedded store, while it serves", runBackup},
	{"restore", "put a backup in the place of the embedded store, while no server runs", runRestore},
	{"version", "print the versions the program was built of", runVersion},
}

// Main runs the command line for app with args (without the program name)
// and returns the process exit code: 0 on success, 2 for a usage error, 1
// for any other failure. SIGINT, SIGTERM and SIGHUP stop it gracefully
// (not SIGHUP when started ignoring it, as under nohup).
func Main(app plait.App, args []string, opts ...Option) int {
	named := func(p *program) { p.name = filepath.Base(os.Args[0]) }
	return run(app, args, os.Stdout, os.Stderr, append([]Option{named}, opts...)...)
}

func run(app plait.App, args []string, stdout, stderr io.Writer, opts ...Option) int {
	prog := defaults(app)
	for _, o := range opts {
		o(&prog)
	}
	if err := app.Validate(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// plait --help lists the commands; plait serve --help, serve's flags.
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		usage(prog, stdout)
		return 0
	}
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		args = []string{"version"}
	}
	name := "serve"
	if len(args) > 0 && (len(args[0]) == 0 || args[0][0] != '-') {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		if len(args) == 1 && args[0] != "help" { // plait help serve is plait serve --help
			name, args = args[0], []string{"--help"}
		} else {
			usage(prog, stdout)
			return 0
		}
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), stopSignals()...)
		defer stop()
		err := c.run(ctx, prog, args, stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(usageError)):
			fmt.Fprintf(stderr, "%s %s: %v (see '%[1]s %[2]s --help')\n", prog.name, name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "%s %s: %v\n", prog.name, name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "%s: unknown command %q (see '%[1]s help')\n", prog.name, name)
	return 2
}

func usage(p program, w io.Writer) {
	prog := p.name
	fmt.Fprintf(w, "%s: a Plait application\n\nUsage: %s [command] [flags]\n\nCommands:\n", p.app.Name, prog)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nWithout a command, %s serves. Run '%s COMMAND --help' for a command's flags.\n", prog, prog)
}

// usageError is a mistake on the command line (exit code 2).
type usageError struct{ error }

// flags makes a flag set that reports errors instead of exiting, and
// prints its usage, asked for with --help, to stdout.
func flags(prog program, name, summary string, stdout io.Writer) *flag.FlagSet {
	return flagsWithArgs(prog, name, "", summary, stdout)
}

// flagsWithArgs is flags for a command that takes arguments after its
// flags, named in its usage line by args ("SUBJECT").
func flagsWithArgs(prog program, name, args, summary string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	usage := prog.name + " " + name + " [flags]"
	if args != "" {
		usage += " " + args
	}
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: %s\n\n%s\n\nFlags:\n", usage, summary)
		printFlags(fs, stdout)
	}
	return fs
}

// stopSignals are the signals that stop a command in order: SIGINT,
// SIGTERM, and SIGHUP (its terminal closed) unless the process was started
// ignoring it, as nohup does, which asking for it would undo.
func stopSignals() []os.Signal {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	return sigs
}

// flagLine is the start of a flag's line in flag.PrintDefaults' output.
var flagLine = regexp.MustCompile(`(?m)^  -`)

// printFlags prints the flags of fs as flag.PrintDefaults does, each
// named with two dashes, as the docs write them (the flag package takes
// either).
func printFlags(fs *flag.FlagSet, w io.Writer) {
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(w)
	io.WriteString(w, flagLine.ReplaceAllString(b.String(), "  --"))
}

// parse parses args, wrapping errors as usage errors: a mistake is told
// once, in one line (run adds a pointer to --help); the usage is printed
// for --help only.
func parse(fs *flag.FlagSet, args []string) error {
	if err := parseWithArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// given reports whether the flag name was set on the command line.
func given(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// parseWithArgs is parse for a command that takes arguments after its
// flags.
func parseWithArgs(fs *flag.FlagSet, args []string) error {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard) // the flag package's own report of the mistake
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return err
		}
		return usageError{explainFlagError(fs, err)}
	}
	return nil
}

// invalidFlag and invalidBool are the flag package's reports of a value
// it could not take.
var (
	invalidFlag = regexp.MustCompile(`^invalid value (".*") for flag -([^:]+): (.*)$`)
	invalidBool = regexp.MustCompile(`^invalid boolean value (".*") for -([^:]+): (.*)$`)
)

// explainFlagError says err, the flag package's report of a mistake, as
// the docs write flags (two dashes), and for a value of the wrong kind
// what the flag wants rather than "parse error".
func explainFlagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown flag --%s", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("--%s needs a value", name)
	}
	m := invalidFlag.FindStringSubmatch(msg)
	if m == nil {
		m = invalidBool.FindStringSubmatch(msg)
	}
	if m == nil {
		return err
	}
	value, name, why := m[1], m[2], m[3]
	if f := fs.Lookup(name); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			switch g.Get().(type) {
			case time.Duration:
				why = "want a duration such as 10s, 1m30s or 500ms"
			case int, int64, uint, uint64:
				if why != "value out of range" {
					why = "want a whole number"
				}
			case float64:
				why = "want a number"
			case bool:
				why = "want true or false"
			}
		}
	}
	return fmt.Errorf("--%s %s: %s", name, value, why)
}
