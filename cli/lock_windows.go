//go:build windows

package cli

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// tryLock takes an exclusive lock of f, which the process holds until it
// closes f or ends; held reports that another process holds it. The lock
// covers one byte far past the file's content, which other processes can
// so still read (a server's address).
func tryLock(f *os.File) (held bool, err error) {
	ol := &windows.Overlapped{OffsetHigh: 1} // at 4 GiB
	err = windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return true, nil
	}
	return false, err
}
