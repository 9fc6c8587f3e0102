//go:build unix

package filekeys

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive lock of f, waiting for another process that
// holds it; closing f releases it.
func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}
