package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// plaitModule is the module path of Plait itself.
const plaitModule = "github.com/plaithq/plait"

func runVersion(ctx context.Context, prog program, args []string, stdout, stderr io.Writer) error {
	fs := flags(prog, "version", "Prints the versions the program was built of: the application's module (and its commit, when built from a repository), Plait's and Go's.", stdout)
	if err := parse(fs, args); err != nil {
		return err
	}
	bi, _ := debug.ReadBuildInfo()
	_, err := io.WriteString(stdout, versions(prog.app.Name, bi))
	return err
}

// versions says, a line each, what the application named app was built
// of by bi (nil when the binary carries no build information): its main
// module, Plait's module when it is another, and Go.
func versions(app string, bi *debug.BuildInfo) string {
	var b strings.Builder
	if bi == nil {
		fmt.Fprintf(&b, "%s: no build information in the binary\n", app)
	} else {
		fmt.Fprintf(&b, "%s: %s %s%s\n", app, bi.Main.Path, bi.Main.Version, revision(bi))
		if bi.Main.Path != plaitModule {
			plait := "not a dependency"
			for _, d := range bi.Deps {
				if d.Path == plaitModule {
					plait = d.Version
					if d.Replace != nil {
						plait += " replaced by " + strings.TrimSpace(d.Replace.Path+" "+d.Replace.Version)
					}
				}
			}
			fmt.Fprintf(&b, "plait: %s %s\n", plaitModule, plait)
		}
	}
	fmt.Fprintf(&b, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return b.String()
}

// revision is the commit bi was built from, with its time and whether the
// tree had changes not committed, as the go command records them: empty
// outside a repository (go install of a module version, say).
func revision(bi *debug.BuildInfo) string {
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return ""
	}
	out := ", commit " + rev
	if at != "" {
		out += " of " + at
	}
	if modified {
		out += ", with changes not committed"
	}
	return out
}
