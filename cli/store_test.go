package cli

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/plaithq/plait/store/sqlite"
)

// TestServeWarnsOfAStoreOthersCanRead: a store whose directory and file
// let other users in (made by a release that did not close them, or copied
// in) is served, with a warning that names them; once closed, no warning.
func TestServeWarnsOfAStoreOthersCanRead(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows files have no such mode")
	}
	data := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(data, "orderdesk.db")
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	os.Chmod(data, 0o755)
	os.Chmod(path, 0o644)
	serveLogs := func() string {
		t.Helper()
		_, logs, stop := serveUntilStopped(t, "--data", data, "--log-level", "warn")
		stop()
		return logs.String()
	}
	logs := serveLogs()
	if !strings.Contains(logs, "the store can be read by other users of this machine") ||
		!strings.Contains(logs, data+" (0755)") || !strings.Contains(logs, path+" (0644)") {
		t.Errorf("serving a store others can read, the logs:\n%s", logs)
	}
	os.Chmod(data, 0o711) // others may pass through, not list it
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		os.Chmod(p, 0o600)
	}
	if logs := serveLogs(); strings.Contains(logs, "other users") {
		t.Errorf("serving a closed store, the logs:\n%s", logs)
	}
}

// TestAnotherApplicationsStoreIsRefused: serve, inspect and restore refuse
// a store (or a backup) another application claimed, copied in under this
// one's name, saying whose it is, and change nothing.
func TestAnotherApplicationsStoreIsRefused(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	path := filepath.Join(data, "orderdesk.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{Application: "helpdesk"})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	want := `holds the store of application "helpdesk", not "orderdesk": move the file aside`
	for _, args := range [][]string{
		{"serve", "--addr", "127.0.0.1:0", "--data", data},
		{"inspect", "--data", data},
		{"replay", "--view", "orderList", "--data", data},
		{"forget", "--data", data, "c1"},
	} {
		if code, _, stderr := runCLI(t, args...); code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q", args, code, stderr, want)
		}
	}
	if app, err := sqlite.ApplicationOf(ctx, path); err != nil || app != "helpdesk" {
		t.Errorf("the store's application once refused: %q, %v", app, err)
	}
	own := t.TempDir()
	code, _, stderr := runCLI(t, "restore", "--data", own, "--from", path)
	if code != 1 || !strings.Contains(stderr, path+` is a backup of application "helpdesk", not "orderdesk": restore it with that application's program`) {
		t.Errorf("restore of helpdesk's store: exit %d, stderr %q", code, stderr)
	}
	if entries, _ := os.ReadDir(own); len(entries) > 1 { // its lock
		t.Errorf("the refused restore left %v", entries)
	}
}
