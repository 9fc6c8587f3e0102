package filekeys

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestAKeyFileOfZerosIsNoKey: Destroy overwrites a key file with zeros,
// then removes it. A crash between the two leaves zeros, which must read as
// a destroyed key, never as a key to seal new data with.
func TestAKeyFileOfZerosIsNoKey(t *testing.T) {
	ctx := context.Background()
	keys, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keys.path("s1"), make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	if key, found, err := keys.Key(ctx, "s1", false); err != nil || found {
		t.Fatalf("a file of zeros read as key %x (%v, %v)", key, found, err)
	}
	key, found, err := keys.Key(ctx, "s1", true)
	if err != nil || !found || bytes.Equal(key, make([]byte, 32)) {
		t.Fatalf("made in its place: %x (%v, %v)", key, found, err)
	}
}

// A key is made once, kept across opens of the directory, and gone for good
// once destroyed: a later one is new.
func TestAKeyIsKeptUntilDestroyed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, found, err := keys.Key(ctx, "s1", false); err != nil || found {
		t.Fatalf("a key before any was made: %v, %v", found, err)
	}
	first, found, err := keys.Key(ctx, "s1", true)
	if err != nil || !found || len(first) != 32 {
		t.Fatalf("made %x (%v, %v)", first, found, err)
	}
	if files := keyFiles(t, dir); len(files) != 1 || strings.Contains(files[0], "s1") {
		t.Fatalf("key files %v: want one, not named after the subject", files)
	}
	again, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k, found, err := again.Key(ctx, "s1", false); err != nil || !found || !bytes.Equal(k, first) {
		t.Fatalf("reopened: %x (%v, %v), want %x", k, found, err, first)
	}
	if err := again.Destroy(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if entries := keyFiles(t, dir); len(entries) != 0 {
		t.Fatalf("the directory still holds %v", entries)
	}
	if _, found, err := keys.Key(ctx, "s1", false); err != nil || found {
		t.Fatalf("a destroyed key read back: %v, %v", found, err)
	}
	if k, _, _ := keys.Key(ctx, "s1", true); bytes.Equal(k, first) {
		t.Fatal("the key made after Destroy is the destroyed one")
	}
	if err := keys.Destroy(ctx, "nobody"); err != nil {
		t.Fatalf("destroying a subject without a key: %v", err)
	}
}

// TestTwoStoresOnOneDirectoryAgreeOnAFirstKey: two key stores on one
// directory, as two processes sharing it, make a subject's first key at
// once, half of them over a destroyed key's file. Both get the key the directory keeps: a caller handed another would
// seal data no one could open again.
func TestTwoStoresOnOneDirectoryAgreeOnAFirstKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		subject := "s" + strconv.Itoa(i)
		if i%2 == 0 { // what a crash in the middle of Destroy leaves
			if err := os.WriteFile(a.path(subject), make([]byte, 32), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var keys [2][]byte
		var errs [2]error
		var wg sync.WaitGroup
		for j, k := range []*Keys{a, b} {
			wg.Go(func() { keys[j], _, errs[j] = k.Key(ctx, subject, true) })
		}
		wg.Wait()
		kept, found, err := a.Key(ctx, subject, false)
		if err != nil || !found {
			t.Fatalf("%s: no key kept (%v)", subject, err)
		}
		for j := range keys {
			if errs[j] != nil || !bytes.Equal(keys[j], kept) {
				t.Fatalf("%s: store %d got %x (%v), the directory keeps %x", subject, j, keys[j], errs[j], kept)
			}
		}
	}
	if files := keyFiles(t, dir); len(files) != 200 {
		t.Fatalf("%d files in the directory, want the 200 keys alone", len(files))
	}
}

// keyFiles lists the files of dir but its lock.
func keyFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != lockName {
			names = append(names, e.Name())
		}
	}
	return names
}
