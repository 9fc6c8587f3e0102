package filekeys

import (
	"bytes"
	"context"
	"os"
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
	if files, _ := os.ReadDir(dir); len(files) != 1 || bytes.Contains([]byte(files[0].Name()), []byte("s1")) {
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
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
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
