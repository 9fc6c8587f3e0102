package shred

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"

	"github.com/plaithq/plait"
)

type person struct {
	Name string `json:"name"`
	Age  int    `json:"age"`
	City string `json:"city"`
}

func TestSealedFieldsOpenUntilTheKeyIsDestroyed(t *testing.T) {
	ctx := context.Background()
	keys := &memKeys{keys: map[string][]byte{}}
	app := plait.App{Name: "people", Aggregates: []plait.Definition{plait.NewAggregate("person",
		plait.Apply("born", func(s person, e person) person { return e }),
		plait.Personal[person](plait.SubjectIsID, "name", "age"),
	)}}
	sh, err := New(app, keys)
	if err != nil || sh == nil {
		t.Fatalf("shredder: %v %v", sh, err)
	}
	plain := json.RawMessage(`{"name":"Ann Sealed","age":41,"city":"Lyon"}`)
	sealed, err := sh.Seal(ctx, "person", "p1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("Ann Sealed")) || bytes.Contains(sealed, []byte(`"age":41`)) || !bytes.Contains(sealed, []byte("Lyon")) {
		t.Fatalf("sealed: %s", sealed)
	}
	if again, _ := sh.Seal(ctx, "person", "p1", sealed); !bytes.Equal(again, sealed) {
		t.Errorf("sealing twice changed the value: %s", again)
	}
	// A view that copied a sealed value holds it as it is; opening reads it.
	view := json.RawMessage(`{"items":[{"who":` + string(mustField(t, sealed, "name")) + `}]}`)
	opened, err := sh.Open(ctx, view)
	if err != nil || string(opened) != `{"items":[{"who":"Ann Sealed"}]}` {
		t.Fatalf("opened view: %s %v", opened, err)
	}
	var got person
	if o, _ := sh.Open(ctx, sealed); json.Unmarshal(o, &got) != nil || got != (person{"Ann Sealed", 41, "Lyon"}) {
		t.Fatalf("opened: %+v", got)
	}
	if len(keys.keys) != 1 {
		t.Fatalf("%d keys, want the subject's one", len(keys.keys))
	}
	if err := keys.Destroy(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	sh.Forget("p1")
	o, err := sh.Open(ctx, sealed)
	if err != nil || string(o) != `{"age":null,"city":"Lyon","name":"[erased]"}` {
		t.Errorf("after destroy: %s %v", o, err)
	}
	// New data of the subject gets a new key; the old tokens stay erased.
	resealed, err := sh.Seal(ctx, "person", "p1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := sh.Open(ctx, resealed); !bytes.Contains(o, []byte("Ann Sealed")) {
		t.Errorf("new data: %s", o)
	}
	if o, _ := sh.Open(ctx, sealed); bytes.Contains(o, []byte("Ann Sealed")) {
		t.Errorf("old data readable with the new key: %s", o)
	}
}

func mustField(t *testing.T, obj json.RawMessage, f string) json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		t.Fatal(err)
	}
	return m[f]
}

func TestPersonalFieldsNeedAKeyStore(t *testing.T) {
	app := plait.App{Name: "people", Aggregates: []plait.Definition{plait.NewAggregate("person",
		plait.Apply("born", func(s person, e person) person { return e }),
		plait.Personal[person](plait.SubjectIsID, "name"),
	)}}
	if _, err := New(app, nil); err == nil {
		t.Error("no error without a key store")
	}
}

// memKeys keeps keys in memory and counts the reads of the key store.
type memKeys struct {
	mu    sync.Mutex
	keys  map[string][]byte
	made  int // keys made, so that each is new
	reads int
	// during, when set, runs inside Key after the key is read.
	during func(subject string)
}

func (k *memKeys) Key(ctx context.Context, subject string, create bool) ([]byte, bool, error) {
	k.mu.Lock()
	k.reads++
	key, ok := k.keys[subject]
	if !ok && create {
		k.made++
		key = bytes.Repeat([]byte{byte(k.made), byte(k.made >> 8), 7, 9}, 8)
		k.keys[subject] = key
		ok = true
	}
	during := k.during
	k.mu.Unlock()
	if during != nil {
		during(subject)
	}
	return key, ok, nil
}

func (k *memKeys) Destroy(ctx context.Context, subject string) error {
	k.mu.Lock()
	delete(k.keys, subject)
	k.mu.Unlock()
	return nil
}

func TestCiphersInMemoryAreBoundedAndForgetStillErases(t *testing.T) {
	ctx := context.Background()
	keys := &memKeys{keys: map[string][]byte{}}
	app := plait.App{Name: "people", Aggregates: []plait.Definition{plait.NewAggregate("person",
		plait.Apply("born", func(s person, e person) person { return e }),
		plait.Personal[person](plait.SubjectIsID, "name"),
	)}}
	sh, err := New(app, keys)
	if err != nil || sh == nil {
		t.Fatalf("shredder: %v %v", sh, err)
	}
	subjects := 3 * maxCiphers
	sealed := make([]json.RawMessage, subjects)
	for i := range subjects {
		id := "p" + strconv.Itoa(i)
		if sealed[i], err = sh.Seal(ctx, "person", id, json.RawMessage(`{"name":"N`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := sh.Open(ctx, json.RawMessage(`"plait:sealed:1:s:AAAA:never`+id+`"`)); err != nil {
			t.Fatal(err) // a subject without a key is remembered too
		}
	}
	if n := sh.ciphers.Len(); n != maxCiphers {
		t.Fatalf("%d ciphers in memory after %d subjects, want %d", n, 2*subjects, maxCiphers)
	}
	// Every subject still opens, the evicted ones from the key store.
	for _, i := range []int{0, 1, subjects / 2, subjects - 1} {
		if o, err := sh.Open(ctx, sealed[i]); err != nil || string(o) != `{"name":"Np`+strconv.Itoa(i)+`"}` {
			t.Fatalf("subject %d: %s %v", i, o, err)
		}
	}
	// Forget erases a subject whose cipher is in memory and one whose is not.
	for _, i := range []int{subjects - 1, 2} {
		id := "p" + strconv.Itoa(i)
		if _, err := sh.Open(ctx, sealed[i]); err != nil {
			t.Fatal(err)
		}
		if err := keys.Destroy(ctx, id); err != nil {
			t.Fatal(err)
		}
		sh.Forget(id)
		if o, err := sh.Open(ctx, sealed[i]); err != nil || string(o) != `{"name":"[erased]"}` {
			t.Errorf("subject %d after forget: %s %v", i, o, err)
		}
		if _, ok := sh.ciphers.Peek(id); ok {
			if a, _ := sh.ciphers.Peek(id); a != nil {
				t.Errorf("subject %d: a cipher kept in memory after forget", i)
			}
		}
	}
	if n := sh.ciphers.Len(); n > maxCiphers {
		t.Errorf("%d ciphers in memory, over %d", n, maxCiphers)
	}
}

func TestAKeyReadWhileForgetRunsIsNotKept(t *testing.T) {
	ctx := context.Background()
	keys := &memKeys{keys: map[string][]byte{}}
	app := plait.App{Name: "people", Aggregates: []plait.Definition{plait.NewAggregate("person",
		plait.Apply("born", func(s person, e person) person { return e }),
		plait.Personal[person](plait.SubjectIsID, "name"),
	)}}
	sh, err := New(app, keys)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sh.Seal(ctx, "person", "p1", json.RawMessage(`{"name":"Ann"}`))
	if err != nil {
		t.Fatal(err)
	}
	sh.ciphers.Purge()
	// A read of the key store that got the key just before forget ran must
	// not put it back in memory after forget dropped it.
	keys.during = func(subject string) {
		keys.during = nil
		if err := keys.Destroy(ctx, subject); err != nil {
			t.Error(err)
		}
		sh.Forget(subject)
	}
	if _, err := sh.Open(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	if o, err := sh.Open(ctx, sealed); err != nil || string(o) != `{"name":"[erased]"}` {
		t.Errorf("after forget: %s %v", o, err)
	}
}

// gatedKeys holds each Key call without create until release is closed,
// as a slow read of the key store would.
type gatedKeys struct {
	Keys
	started chan struct{}
	release chan struct{}
}

func (g gatedKeys) Key(ctx context.Context, subject string, create bool) ([]byte, bool, error) {
	if !create {
		close(g.started)
		<-g.release
	}
	return g.Keys.Key(ctx, subject, create)
}

// TestAKeyFoundMissingByAnEarlierReadIsNotHidden: a read finds no key for
// a subject; before it returns, a seal makes one. The read's answer, older
// than the key, must not hide it: the subject's data would read as erased,
// and sealed back as such by the next decision on it.
func TestAKeyFoundMissingByAnEarlierReadIsNotHidden(t *testing.T) {
	ctx := context.Background()
	fk := &memKeys{keys: map[string][]byte{}}
	// The store answers the read after the key is made, as if it had
	// looked before: none.
	none := gatedKeys{Keys: missingKeys{fk}, started: make(chan struct{}), release: make(chan struct{})}
	app := plait.App{Name: "people", Aggregates: []plait.Definition{plait.NewAggregate("person",
		plait.Apply("born", func(s person, e person) person { return e }),
		plait.Personal[person](plait.SubjectIsID, "name"),
	)}}
	sh, err := New(app, none)
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan *subjectCipher, 1)
	go func() {
		a, _ := sh.aead(ctx, "p1", false)
		read <- a
	}()
	<-none.started
	made, err := sh.aead(ctx, "p1", true)
	if err != nil || made == nil {
		t.Fatalf("make the key: %v", err)
	}
	close(none.release)
	if a := <-read; a != nil {
		t.Fatal("the read found a key it was told was missing")
	}
	if a, err := sh.aead(ctx, "p1", false); err != nil || a != made {
		t.Fatalf("after the late read, the subject's cipher is %v (%v), want the one made", a, err)
	}
}

// missingKeys answers every read without create with no key.
type missingKeys struct{ Keys }

func (m missingKeys) Key(ctx context.Context, subject string, create bool) ([]byte, bool, error) {
	if !create {
		return nil, false, nil
	}
	return m.Keys.Key(ctx, subject, create)
}
