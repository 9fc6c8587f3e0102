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
