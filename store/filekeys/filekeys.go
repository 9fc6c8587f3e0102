// Package filekeys is a key store of data subjects (engine.Keys) in a
// directory of files: keys kept apart from the database whose personal
// data they seal, so that destroying one leaves no copy in the database's
// files, backups or write-ahead log.
package filekeys

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/plaithq/plait/internal/durable"
)

// Keys keeps each subject's key in a file of its own in a directory:
// the file's name is a hash of the subject, so the directory names no one.
// Destroy overwrites the file before it removes it. Keep the directory
// apart from the data it protects, and out of its backups.
type Keys struct {
	Dir string
	mu  sync.Mutex
}

// New returns a key store in dir, creating it. Processes may share the
// directory: making and destroying a key take its lock.
func New(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("filekeys: key directory: %w", err)
	}
	k := &Keys{Dir: dir}
	// A key written by a process that crashed before it named it was never
	// used: its file goes.
	unlock, err := k.lock()
	if err != nil {
		return nil, fmt.Errorf("filekeys: lock the key directory: %w", err)
	}
	defer unlock()
	tmps, _ := filepath.Glob(filepath.Join(dir, "*.key.*.tmp"))
	for _, t := range tmps {
		os.Remove(t)
	}
	return k, nil
}

// lockName is the file whose lock serialises, across processes sharing the
// directory, the making and the destroying of keys.
const lockName = "keys.lock"

// lock takes the directory's lock; the function it returns releases it.
func (k *Keys) lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(k.Dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

func (k *Keys) path(subject string) string {
	h := sha256.Sum256([]byte("plait subject key\x00" + subject))
	return filepath.Join(k.Dir, hex.EncodeToString(h[:])+".key")
}

// Key returns the subject's key; see engine.Keys.
func (k *Keys) Key(ctx context.Context, subject string, create bool) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.path(subject)
	key, err := readKey(p)
	if err != nil || key != nil || !create {
		return key, key != nil, err
	}
	// Another process may be making this key, or destroying it: the rest
	// is done under the directory's lock, from a fresh read.
	unlock, err := k.lock()
	if err != nil {
		return nil, false, fmt.Errorf("filekeys: lock the key directory: %w", err)
	}
	defer unlock()
	if key, err := readKey(p); err != nil || key != nil {
		return key, key != nil, err // made by another process meanwhile
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, false, err
	}
	// Written whole and synced under another name first, the key is then
	// given its own at once: a crash leaves it or nothing.
	f, err := os.CreateTemp(k.Dir, filepath.Base(p)+".*.tmp")
	if err != nil {
		return nil, false, fmt.Errorf("filekeys: write key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("filekeys: write key: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return nil, false, fmt.Errorf("filekeys: write key: %w", err)
	}
	if err := durable.SyncDir(k.Dir); err != nil { // the new name survives a power loss
		return nil, false, fmt.Errorf("filekeys: write key: %w", err)
	}
	return key, true, nil
}

// readKey reads the key in file p: nil, and no error, if there is none. A
// file of zeros is a key Destroy overwrote and a crash kept from removing:
// destroyed, never a key to seal with; a new key replaces it.
func readKey(p string) ([]byte, error) {
	key, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("filekeys: read key: %w", err)
	}
	if len(key) != 32 || bytes.Equal(key, make([]byte, 32)) {
		return nil, nil
	}
	return key, nil
}

// Destroy overwrites the subject's key file with zeros, syncs it and
// removes it; see engine.Keys.
func (k *Keys) Destroy(ctx context.Context, subject string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	unlock, err := k.lock()
	if err != nil {
		return fmt.Errorf("filekeys: lock the key directory: %w", err)
	}
	defer unlock()
	p := k.path(subject)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("filekeys: destroy key: %w", err)
	}
	_, err = f.WriteAt(make([]byte, 32), 0)
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return fmt.Errorf("filekeys: destroy key: %w", err)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("filekeys: destroy key: %w", err)
	}
	if err := durable.SyncDir(k.Dir); err != nil {
		return fmt.Errorf("filekeys: destroy key: %w", err)
	}
	return nil
}
