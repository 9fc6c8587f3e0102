package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// dataLock is the lock a serving process holds on its data directory, so
// that another command on the same files knows to go through its API. The
// file holds the server's base URL.
type dataLock struct {
	f *os.File
}

// lockedError means another process holds the data directory: a server,
// at url, or when url is empty a command working on the files themselves
// (an offline replay or forget) or a server still starting.
type lockedError struct{ url string }

func (e *lockedError) Error() string {
	if e.url == "" {
		return "the data directory is in use by another plait process (an offline replay or forget, or a server still starting)"
	}
	return "the data directory is in use by a running server (" + e.url + ")"
}

// lockedBy returns the address of the server that holds the data
// directory, "" if none recorded one, and whether err is a lockedError.
func lockedBy(err error) (url string, locked bool) {
	var le *lockedError
	if errors.As(err, &le) {
		return le.url, true
	}
	return "", false
}

// lockData takes the lock of app's data directory. When another process
// holds it, it returns a *lockedError with that process's base URL.
func lockData(dir, app string) (*dataLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil { // as the store makes it
		return nil, fmt.Errorf("create data directory: %w", dataDirProblem(dir, err))
	}
	path := filepath.Join(dir, app+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", dataDirProblem(dir, err))
	}
	if held, err := tryLock(f); err != nil || held {
		b, _ := os.ReadFile(path)
		f.Close()
		if held {
			return nil, &lockedError{url: strings.TrimSpace(string(b))}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// A holder killed before release left its URL: no server runs there.
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("clear lock %s: %w", path, err)
	}
	return &dataLock{f: f}, nil
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
