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

func TestMkdirAll(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "a", "b", "c")
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(base, "a"), filepath.Join(base, "a", "b"), dir} {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v", d, fi, err)
		}
	}
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		t.Errorf("again: %v", err)
	}
	file := filepath.Join(base, "f")
	os.WriteFile(file, nil, 0o600)
	if err := durable.MkdirAll(filepath.Join(file, "d"), 0o700); err == nil {
		t.Error("a directory under a file was made")
	}
	if err := durable.MkdirAll(file, 0o700); err == nil {
		t.Error("a file was taken for a directory")
	}
}
