package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/plaithq/plait/engine"
)

// tokenOr returns t, or $PLAIT_TOKEN when t is empty.
func tokenOr(t string) string {
	if t == "" {
		return os.Getenv("PLAIT_TOKEN")
	}
	return t
}

// postAdmin POSTs an admin request to url with the bearer token, if any,
// and returns the response when it is 200 OK; otherwise an error with the
// problem's detail.
func postAdmin(ctx context.Context, url, token string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask the server: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var p struct{ Detail string }
		json.NewDecoder(resp.Body).Decode(&p)
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = " (give an admin's token with --token or $PLAIT_TOKEN)"
		}
		return nil, fmt.Errorf("the server answered %s: %s%s", resp.Status, p.Detail, hint)
	}
	return resp, nil
}

// serverURL is the base URL --server gives: http:// is assumed when it
// names no scheme.
func serverURL(server string) (string, error) {
	base := server
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", usageError{fmt.Errorf("--server %q: want the server's base URL, such as http://127.0.0.1:8080", server)}
	}
	return u.String(), nil
}

// replayRemote asks the server at base to rebuild view, printing the
// progress it streams back.
func replayRemote(ctx context.Context, base, view, token string, stdout io.Writer) error {
	if base == "" {
		return errors.New("a server holds the data directory but did not record its address")
	}
	resp, err := postAdmin(ctx, base+"/views/"+view+"/rebuild", token)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	type report struct {
		View, Phase, Error     string
		Position, Head, Events int64
		Instances              int
		ElapsedMS, PausedMS    int64
	}
	var last report
	for sc.Scan() {
		last = report{} // each line says all it says: nothing kept from the one before
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			return fmt.Errorf("read the progress: %w", err)
		}
		if last.Phase == "failed" {
			return fmt.Errorf("rebuild %s: %s", view, last.Error)
		}
		printProgress(stdout, engine.Progress{Type: last.View, Phase: last.Phase, Position: last.Position,
			Head: last.Head, Events: last.Events, Instances: last.Instances, Elapsed: time.Duration(last.ElapsedMS) * time.Millisecond})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read the progress: %w", err)
	}
	if last.Phase != "done" {
		return errors.New("the server ended the rebuild without saying it was done")
	}
	fmt.Fprintf(stdout, "rebuilt %s: %d events replayed, %d instances, in %s (writes paused %s)\n",
		view, last.Events, last.Instances, time.Duration(last.ElapsedMS)*time.Millisecond, time.Duration(last.PausedMS)*time.Millisecond)
	return nil
}
