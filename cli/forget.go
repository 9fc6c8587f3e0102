package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"

	"github.com/plaithq/plait/engine"
)

// runForget is plait forget SUBJECT: it destroys the data subject's key, so
// that every personal value of the subject reads as erased, and lists the
// view instances that showed it. It opens the embedded store, or asks the
// server that runs on the data directory, or the one --server names (any
// deployment, scaled out included), through POST /subjects/{subject}/forget.
func runForget(ctx context.Context, prog program, args []string, stdout, stderr io.Writer) error {
	app := prog.app
	fs := flagsWithArgs(prog, "forget", "SUBJECT", "Forgets a data subject: destroys its key, so that every personal field of the subject\n(plait.Personal) reads as erased everywhere, and lists the view instances that showed it.\nWhen a server runs on the data directory, or with --server, the server forgets it, through its API.", stdout)
	var sf storeFlags
	sf.register(fs)
	server := fs.String("server", "", "ask the server at this base `URL` (http://host:port), embedded or scaled out, instead of the data directory")
	token := fs.String("token", "", "bearer token for a server that requires auth, with the admin role (default $PLAIT_TOKEN)")
	if err := parseWithArgs(fs, args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		return usageError{errors.New("want one SUBJECT, after the flags")}
	}
	subject := fs.Arg(0)
	if *server != "" {
		base, err := serverURL(*server)
		if err != nil {
			return err
		}
		return forgetRemote(ctx, base, subject, tokenOr(*token), stdout)
	}
	if err := sf.existing(app); err != nil {
		return err
	}
	lock, err := lockData(sf.data, app.Name)
	if base, locked := lockedBy(err); locked {
		if base == "" {
			return fmt.Errorf("%w: try again once it is done, or use --server", err)
		}
		fmt.Fprintf(stdout, "a server runs on this data directory: forgetting through %s\n", base)
		return forgetRemote(ctx, base, subject, tokenOr(*token), stdout)
	}
	if err != nil {
		return err
	}
	defer lock.release()
	return sf.withEngine(ctx, app, stderr, func(e *engine.Engine) error {
		f, err := e.Forget(ctx, subject)
		if err != nil {
			return err
		}
		printForgotten(stdout, f)
		return nil
	})
}

func printForgotten(w io.Writer, f engine.Forgotten) {
	if len(f.Items) == 0 {
		fmt.Fprintf(w, "forgot %s: its key, if it had one, is destroyed; no view instance showed its data\n", f.Subject)
		return
	}
	fmt.Fprintf(w, "forgot %s: its key is destroyed; %d view instances showed its data:\n", f.Subject, len(f.Items))
	for _, it := range f.Items {
		fmt.Fprintf(w, "  %s/%s\n", it.Type, it.ID)
	}
}

// forgetRemote asks the server at base to forget subject.
func forgetRemote(ctx context.Context, base, subject, token string, stdout io.Writer) error {
	resp, err := postAdmin(ctx, base+"/subjects/"+url.PathEscape(subject)+"/forget", token)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var f engine.Forgotten
	var body struct {
		Subject string           `json:"subject"`
		Items   []engine.ItemRef `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	f.Subject, f.Items = body.Subject, body.Items
	printForgotten(stdout, f)
	return nil
}
