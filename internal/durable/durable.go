// Package durable makes what was written to files survive a power loss:
// a file's bytes, and the names given in a directory.
package durable

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// SyncFile flushes the file at path to the disk.
func SyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// SyncDir flushes a directory's entries to the disk, so that a name
// given, changed or removed in it survives a crash. On Windows, whose file
// systems journal their names and which cannot flush a directory opened
// this way, there is nothing to do.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
