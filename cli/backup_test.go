package cli

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plaithq/plait/store/sqlite"
)

// TestBackupWhileServingThenRestore: plait backup copies the store of a
// running server; plait restore refuses to run under it, and once it is
// stopped puts the backup back: what came after the backup is gone, what
// came before is served again, and a customer forgotten since the backup
// stays forgotten.
func TestBackupWhileServingThenRestore(t *testing.T) {
	data := t.TempDir()
	backup := filepath.Join(t.TempDir(), "backups", "b1.db")
	serve := func() (base string, stop func()) {
		base, _, stop = serveUntilStopped(t, "--data", data, "--log-level", "warn")
		return base, stop
	}
	do := func(base, method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	place := func(base, id string) {
		t.Helper()
		body := `{"type":"order","aggregateId":"` + id + `","name":"place","data":{"customerId":"c1","lines":[{"sku":"A","qty":1,"price":2}]}}`
		if code, b := do(base, "POST", "/commands?wait=settled", body); code != 200 {
			t.Fatalf("place %s: %d %s", id, code, b)
		}
	}

	base, stop := serve()
	if code, b := do(base, "POST", "/commands?wait=settled", `{"type":"customer","aggregateId":"c1","name":"create","data":{"name":"Ann","email":"ann.backup@example.com"}}`); code != 200 {
		t.Fatalf("create c1: %d %s", code, b)
	}
	place(base, "o1")
	code, out, stderr := runCLI(t, "backup", "--data", data, "--to", backup)
	if code != 0 || !strings.Contains(out, "backed up "+filepath.Join(data, "orderdesk.db")+" to "+backup) {
		t.Fatalf("backup while serving: exit %d\n%s\n%s", code, out, stderr)
	}
	place(base, "o2")
	code, _, stderr = runCLI(t, "restore", "--data", data, "--from", backup)
	if code != 1 || !strings.Contains(stderr, "in use by a running server ("+base+"): stop it first to restore") {
		t.Fatalf("restore under a server: exit %d\n%s", code, stderr)
	}
	if code, _ := do(base, "GET", "/aggregates/order/o2", ""); code != 200 {
		t.Fatalf("o2 after a refused restore: %d", code)
	}
	stop()
	if code, out, stderr := runCLI(t, "forget", "--data", data, "c1"); code != 0 {
		t.Fatalf("forget: exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, stderr = runCLI(t, "restore", "--data", data, "--from", backup)
	given := regexp.MustCompile(`new commits take positions after (\d+), the last the store it replaced gave`).FindStringSubmatch(out)
	if code != 0 || !strings.Contains(out, "the store it replaced is at "+filepath.Join(data, "orderdesk.db.replaced-")) ||
		!strings.Contains(out, "data subjects forgotten since the backup, kept forgotten (their keys destroyed again): 1\n") || stderr != "" || given == nil {
		t.Fatalf("restore: exit %d\n%s\n%s", code, out, stderr)
	}

	if code, out, stderr := runCLI(t, "inspect", "--data", data); code != 0 ||
		!strings.Contains(out, "log head    "+given[1]+" (given by the store a restore replaced; the log's last item is at ") {
		t.Errorf("inspect the restored store: exit %d\n%s\n%s", code, out, stderr)
	}

	base, stop = serve()
	defer stop()
	// The reactors stand at the backup's head, behind positions no item
	// has: they have nothing to do.
	waitFor(t, "no subscription lag", func() bool {
		_, metrics := do(base, "GET", "/metrics", "")
		lags := regexp.MustCompile(`(?m)^plait_subscription_lag\{.*\} (\d+)$`).FindAllStringSubmatch(metrics, -1)
		for _, l := range lags {
			if l[1] != "0" {
				return false
			}
		}
		return len(lags) > 0
	})
	// Streams resumed with tokens the replaced store gave after the
	// backup (its last one, and one before it) get what is committed
	// after the restore.
	last, _ := strconv.ParseInt(given[1], 10, 64)
	streams := []sseFrames{resume(t, base, given[1]), resume(t, base, strconv.FormatInt(last-1, 10))}
	place(base, "o3")
	for i, frames := range streams {
		for _, kind := range []string{"event", "outcome"} {
			f := frames.next(t, func(f sseFrame) bool { return f.kind == kind && strings.Contains(f.data, `"o3"`) })
			if id, _ := strconv.ParseInt(f.id, 10, 64); id <= last {
				t.Errorf("stream %d: o3's %s frame has id %s, not after %d", i, kind, f.id, last)
			}
		}
	}
	if code, _ := do(base, "GET", "/aggregates/order/o1", ""); code != 200 {
		t.Errorf("o1, placed before the backup: %d", code)
	}
	if code, _ := do(base, "GET", "/aggregates/order/o2", ""); code != 404 {
		t.Errorf("o2, placed after the backup: %d, want 404", code)
	}
	if code, b := do(base, "GET", "/aggregates/customer/c1", ""); code != 200 || strings.Contains(b, "ann.backup@example.com") {
		t.Errorf("c1, forgotten after the backup: %d %s", code, b)
	}
	if code, _, stderr := runCLI(t, "backup", "--data", data, "--to", backup); code != 1 || !strings.Contains(stderr, "exists") {
		t.Errorf("a backup over a file: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "backup", "--data", data); code != 2 || !strings.Contains(stderr, "--to") {
		t.Errorf("a backup without --to: exit %d, %s", code, stderr)
	}
}

// TestRestoreOnANewDataDirectoryWarns: restored where no store is (a new
// machine after the old one was lost), the backup is put in place, and
// plait restore warns of what no store could tell: the subjects forgotten
// since the backup, and the positions given since.
func TestRestoreOnANewDataDirectoryWarns(t *testing.T) {
	data := t.TempDir()
	backup := filepath.Join(t.TempDir(), "b.db")
	st, err := sqlite.Open(context.Background(), filepath.Join(data, "orderdesk.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if code, out, stderr := runCLI(t, "backup", "--data", data, "--to", backup); code != 0 {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, stderr)
	}
	empty := t.TempDir()
	code, out, stderr := runCLI(t, "restore", "--data", empty, "--from", backup)
	if code != 0 || !strings.Contains(out, "restored "+backup+" into "+filepath.Join(empty, "orderdesk.db")+": log head 0\n") ||
		strings.Contains(out, "the store it replaced is at") ||
		!strings.Contains(stderr, "warning: no store replaced could tell the positions given before the restore") ||
		!strings.Contains(stderr, "warning: the data subjects forgotten since the backup was taken are remembered again") {
		t.Fatalf("restore on a new data directory: exit %d\n%s\n%s", code, out, stderr)
	}
	if code, out, stderr := runCLI(t, "inspect", "--data", empty); code != 0 || !strings.Contains(out, "log head    0") {
		t.Errorf("inspect the restored store: exit %d\n%s\n%s", code, out, stderr)
	}
}

// TestBackupRemovesThePartialCopiesOfBackupsCutShort: a backup removes
// the partial copies (and their journals) that backups cut short left in
// its directory, and nothing else there; backups into one directory take
// turns, so none removes the copy another is writing.
func TestBackupRemovesThePartialCopiesOfBackupsCutShort(t *testing.T) {
	data := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(data, "orderdesk.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	backups := t.TempDir()
	left := []string{"old.db.partial-123", "old.db.partial-123-journal"}
	kept := []string{"old.db", "notes.partial-draft", "old.db.partial-123.txt"}
	for _, name := range append(left, kept...) {
		if err := os.WriteFile(filepath.Join(backups, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	code, out, stderr := runCLI(t, "backup", "--data", data, "--to", filepath.Join(backups, "new.db"))
	if code != 0 || stderr != "" {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, name := range left {
		if _, err := os.Stat(filepath.Join(backups, name)); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", name, err)
		}
		if !strings.Contains(out, "removed "+filepath.Join(backups, name)+", a partial copy left by a backup cut short\n") {
			t.Errorf("the backup did not say it removed %s:\n%s", name, out)
		}
	}
	for _, name := range append(kept, "new.db") {
		if _, err := os.Stat(filepath.Join(backups, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	release, err := lockBackups(backups) // another backup, writing
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(t, "backup", "--data", data, "--to", filepath.Join(backups, "second.db"))
	if code != 1 || !strings.Contains(stderr, "another plait backup is writing into "+backups+": run this one once it ends") {
		t.Errorf("a backup while another writes into its directory: exit %d\n%s", code, stderr)
	}
	release()
	if code, out, stderr := runCLI(t, "backup", "--data", data, "--to", filepath.Join(backups, "second.db")); code != 0 {
		t.Errorf("a backup once the other ended: exit %d\n%s\n%s", code, out, stderr)
	}
}

// sseFrame is one frame of /stream.
type sseFrame struct{ id, kind, data string }

// sseFrames are the frames of one stream, as they come.
type sseFrames chan sseFrame

// resume opens /stream with Last-Event-ID from, for as long as the test.
func resume(t *testing.T, base, from string) sseFrames {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/stream", nil)
	req.Header.Set("Last-Event-ID", from)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET /stream with Last-Event-ID %s: %d %s", from, resp.StatusCode, b)
	}
	frames := make(sseFrames, 64)
	go func() {
		defer resp.Body.Close()
		defer close(frames)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var f sseFrame
		for sc.Scan() {
			switch line := sc.Text(); {
			case strings.HasPrefix(line, "id: "):
				f.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				f.kind = line[7:]
			case strings.HasPrefix(line, "data: "):
				f.data = line[6:]
			case line == "" && f.kind != "":
				frames <- f
				f = sseFrame{}
			}
		}
	}()
	return frames
}

// next returns the next frame that match accepts, failing the test if
// none comes within 10 seconds.
func (fs sseFrames) next(t *testing.T, match func(sseFrame) bool) sseFrame {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-fs:
			if !ok {
				t.Fatal("the stream ended")
			}
			if match(f) {
				return f
			}
		case <-timeout:
			t.Fatal("no such frame within 10s")
		}
	}
}

// waitFor fails the test unless cond holds within 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
	}
}
