package durable_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/plaithq/plait/internal/durable"
)

func TestSyncFileAndDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := durable.SyncFile(path); err != nil {
		t.Errorf("SyncFile: %v", err)
	}
	if err := durable.SyncDir(dir); err != nil {
		t.Errorf("SyncDir: %v", err)
	}
	// What is not there is an error that says so, not a silent success.
	if err := durable.SyncFile(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncFile of no file: %v", err)
	}
	if err := durable.SyncDir(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncDir of no directory: %v", err)
	}
}
