package orderdesk_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/plaithq/plait/examples/orderdesk"
)

// TestForgetDuringABackupHoldsNoCommand: while a reader holds an older
// snapshot of the store (a backup running), a forget destroys the key
// and waits for the reader to purge the log of the key's former pages;
// the commands sent meanwhile are not held up by that wait.
func TestForgetDuringABackupHoldsNoCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orderdesk.db")
	l := startAt(t, orderdesk.PrivateApp(), path)
	l.send("customer", "c1", "create", M{"name": "Ann Gone", "email": "ann.gone@example.com"})
	l.send("customer", "c2", "create", M{"name": "Bob Stays", "email": "bob@example.com"})
	reader, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	tx, err := reader.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	forgotten := make(chan error, 1)
	go func() {
		_, err := l.e.Forget(context.Background(), "c1")
		forgotten <- err
	}()
	time.Sleep(300 * time.Millisecond) // the forget waits for the reader
	sent := make(chan struct{})
	go func() {
		l.send("order", "o1", "place", M{"customerId": "c2", "lines": twoLines})
		close(sent)
	}()
	select {
	case <-sent:
	case <-time.After(5 * time.Second):
		t.Error("a command sent while a forget waited for a reader was held up")
	}
	tx.Rollback()
	select {
	case err := <-forgotten:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the forget did not end once the reader was done")
	}
	<-sent
}
