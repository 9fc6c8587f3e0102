package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// dataLock is the lock a serving process holds on its data directory, so
// that another command on the same files knows to go through its API. The
// file holds the server's base URL.
type dataLock struct {
	f *os.File
}

// errLocked means another process serves the data directory.
var errLocked = errors.New("the data directory is in use by a running server")

// lockData takes the lock of app's data directory. When another process
// holds it, it returns errLocked and that process's base URL.
func lockData(dir, app string) (*dataLock, string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(dir, app+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, "", fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, strings.TrimSpace(string(b)), errLocked
		}
		return nil, "", fmt.Errorf("lock %s: %w", path, err)
	}
	return &dataLock{f: f}, "", nil
}

// advertise records the server's base URL in the lock file.
func (l *dataLock) advertise(url string) error {
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err := l.f.WriteAt([]byte(url+"\n"), 0)
	return err
}

// release drops the lock.
func (l *dataLock) release() {
	l.f.Truncate(0)
	l.f.Close()
}
