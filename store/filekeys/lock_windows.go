//go:build windows

package filekeys

import (
	"os"

	"golang.org/x/sys/windows"
)

// lockFile takes an exclusive lock of f, waiting for another process that
// holds it; closing f releases it.
func lockFile(f *os.File) error {
	ol := &windows.Overlapped{}
	return windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, ol)
}
