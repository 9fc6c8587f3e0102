// Package shred seals personal data so that it can be forgotten
// (crypto-shredding). The personal fields of a type (plait.Personal) are
// sealed when committed: each value is replaced by a token, a string
// holding the value encrypted with AES-256-GCM under its data subject's
// key, and the subject's id. Opening a token gives the value back while
// the key exists. Destroying the key forgets the subject: from then on
// every token of the subject, wherever it was copied, opens as erased.
package shred

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/plaithq/plait"
)

// Keys store one AES-256 key per data subject. Implementations are safe for
// concurrent use.
type Keys interface {
	// Key returns the subject's 32-byte key. When the subject has none, it
	// makes and durably stores one if create is true, and otherwise
	// returns ok false.
	Key(ctx context.Context, subject string, create bool) (key []byte, ok bool, err error)
	// Destroy destroys the subject's key so that no copy of it can be
	// read from the storage afterwards; a subject without a key is no
	// error. A later Key with create makes a new, different key.
	Destroy(ctx context.Context, subject string) error
}

// TokenPrefix starts every sealed value. A token is
// "plait:sealed:1:KIND:SEALED:SUBJECT", KIND "s" for a string and "j" for
// any other JSON value, SEALED the nonce and ciphertext in unpadded
// base64url, SUBJECT the data subject.
const TokenPrefix = "plait:sealed:1:"

// tokenPattern matches a token as a JSON string literal: none of its
// characters needs escaping.
var tokenPattern = regexp.MustCompile(`"plait:sealed:1:([sj]):([A-Za-z0-9_-]+):([A-Za-z0-9._:@+-]+)"`)

// Erased is what a sealed string reads as once its subject is forgotten;
// any other sealed value reads as null.
const Erased = "[erased]"

// maxCiphers is how many subjects' ciphers a Shredder keeps in memory, the
// least recently used dropped first: a dropped one is read from the key
// store again when next needed.
const maxCiphers = 4096

// Shredder seals and opens the personal values of an application's
// types. Its methods are safe for concurrent use. New returns a nil
// Shredder for an application without personal fields: Open, Personal
// and Subject accept one (there is nothing to open), the others do not.
type Shredder struct {
	keys     Keys
	personal map[string]personalDecl // by aggregate type

	mu sync.Mutex
	// ciphers holds the ciphers of the subjects used last, by subject; a
	// nil one: known to have no key.
	ciphers *simplelru.LRU[string, *subjectCipher]
	// forgets counts the calls of Forget: a key read from the key store
	// while one ran is not kept, as it may be the key forget destroyed.
	forgets uint64
}

// subjectCipher is a subject's AES-GCM cipher and the key its nonces are
// derived with.
type subjectCipher struct {
	aead     cipher.AEAD
	nonceKey []byte
}

// nonce derives the nonce of a value from the value itself, under a key of
// the subject (a synthetic IV): the same value of the same subject always
// seals to the same token — so the copies a view holds equal the
// original, and a raw comparison of them holds — while two different
// values never share a nonce but with negligible chance. What it gives
// away is that two tokens of one subject hold the same value.
func (c *subjectCipher) nonce(value []byte) []byte {
	m := hmac.New(sha256.New, c.nonceKey)
	m.Write(value)
	return m.Sum(nil)[:c.aead.NonceSize()]
}

type personalDecl struct {
	fields  map[string]bool
	subject func(string) string
}

// New returns the shredder of app's personal fields, with their keys in
// keys; nil when no type of app has personal fields.
func New(app plait.App, keys Keys) (*Shredder, error) {
	ciphers, err := simplelru.NewLRU[string, *subjectCipher](maxCiphers, nil)
	if err != nil {
		return nil, err
	}
	s := &Shredder{keys: keys, personal: map[string]personalDecl{}, ciphers: ciphers}
	for _, d := range app.Aggregates {
		pd, ok := d.(plait.PersonalData)
		if !ok {
			continue
		}
		fields, subject := pd.PersonalFields()
		if len(fields) == 0 {
			continue
		}
		decl := personalDecl{fields: map[string]bool{}, subject: subject}
		for _, f := range fields {
			decl.fields[f] = true
		}
		s.personal[d.Type()] = decl
	}
	if len(s.personal) == 0 {
		return nil, nil
	}
	if keys == nil {
		return nil, errors.New("shred: the application has personal fields: it needs a key store (Options.Keys, or a store that keeps keys)")
	}
	return s, nil
}

// aead returns the subject's cipher, creating its key if create.
func (s *Shredder) aead(ctx context.Context, subject string, create bool) (*subjectCipher, error) {
	s.mu.Lock()
	a, ok := s.ciphers.Get(subject)
	forgets := s.forgets
	s.mu.Unlock()
	if ok && (a != nil || !create) {
		return a, nil
	}
	key, found, err := s.keys.Key(ctx, subject, create)
	if err != nil {
		return nil, fmt.Errorf("key of subject %s: %w", subject, err)
	}
	if found {
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("key of subject %s: %w", subject, err)
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key of subject %s: %w", subject, err)
		}
		a = &subjectCipher{aead: gcm, nonceKey: nonceKeyOf(key)}
	} else {
		a = nil
	}
	s.mu.Lock()
	// A key found missing by a read that began before another call made
	// one must not hide that key: only a Forget drops a cipher.
	if cur, had := s.ciphers.Peek(subject); s.forgets == forgets && !(had && cur != nil && a == nil) {
		s.ciphers.Add(subject, a)
	}
	s.mu.Unlock()
	return a, nil
}

// nonceKeyOf derives the key a subject's nonces are derived with from its
// key.
func nonceKeyOf(key []byte) []byte {
	nk := sha256.Sum256(append([]byte("plait nonce key\x00"), key...))
	return nk[:]
}

// KeySet is a Keys that reads many subjects' keys at once. A scaled-out
// engine over a key store its instances share uses it to learn which of
// the keys it holds in memory another instance destroyed or replaced.
type KeySet interface {
	// KeysOf returns the keys of those of subjects that have one.
	KeysOf(ctx context.Context, subjects []string) (map[string][]byte, error)
}

// Stale compares the ciphers in memory with the key store: it returns the
// subjects whose key in memory the store no longer has (another instance
// forgot them, and may have made a new key since), for the caller to
// Forget, and drops at once the subjects remembered without a key that
// have one now.
func (s *Shredder) Stale(ctx context.Context, ks KeySet) ([]string, error) {
	s.mu.Lock()
	subjects := s.ciphers.Keys()
	cached := make(map[string]*subjectCipher, len(subjects))
	for _, subj := range subjects {
		cached[subj], _ = s.ciphers.Peek(subj)
	}
	s.mu.Unlock()
	if len(subjects) == 0 {
		return nil, nil
	}
	keys, err := ks.KeysOf(ctx, subjects)
	if err != nil {
		return nil, fmt.Errorf("read the keys of %d subjects: %w", len(subjects), err)
	}
	var stale []string
	for subj, c := range cached {
		key, ok := keys[subj]
		switch {
		case c == nil && ok:
			s.mu.Lock()
			if cur, in := s.ciphers.Peek(subj); in && cur == nil {
				s.ciphers.Remove(subj)
			}
			s.mu.Unlock()
		case c != nil && (!ok || !hmac.Equal(nonceKeyOf(key), c.nonceKey)):
			stale = append(stale, subj)
		}
	}
	sort.Strings(stale)
	return stale, nil
}

// Forget drops the subject's cipher from memory, once its key is destroyed.
func (s *Shredder) Forget(subject string) {
	s.mu.Lock()
	s.ciphers.Remove(subject)
	s.forgets++
	s.mu.Unlock()
}

// Seal replaces the personal top-level fields of data (an object of an
// instance id of type typ) with tokens. Data of a type without personal
// fields, not an object, or whose fields are sealed already is returned as
// it is.
func (s *Shredder) Seal(ctx context.Context, typ, id string, data json.RawMessage) (json.RawMessage, error) {
	decl, ok := s.personal[typ]
	if !ok || len(bytes.TrimSpace(data)) == 0 || bytes.TrimSpace(data)[0] != '{' {
		return data, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("seal %s/%s: %w", typ, id, err)
	}
	subject := decl.subject(id)
	changed := false
	for f := range decl.fields {
		v, ok := obj[f]
		if !ok || string(v) == "null" || bytes.HasPrefix(v, []byte(`"`+TokenPrefix)) {
			continue
		}
		a, err := s.aead(ctx, subject, true)
		if err != nil {
			return nil, fmt.Errorf("seal %s/%s: %w", typ, id, err)
		}
		kind := "j"
		if v[0] == '"' {
			kind = "s"
		}
		nonce := a.nonce(v)
		sealed := a.aead.Seal(nonce, nonce, v, []byte(subject))
		obj[f] = json.RawMessage(`"` + TokenPrefix + kind + ":" + base64.RawURLEncoding.EncodeToString(sealed) + ":" + subject + `"`)
		changed = true
	}
	if !changed {
		return data, nil
	}
	return json.Marshal(obj)
}

// Open replaces every token in data, wherever it is, with the value it
// seals, or with the erased value when its subject's key is gone.
func (s *Shredder) Open(ctx context.Context, data json.RawMessage) (json.RawMessage, error) {
	if s == nil || !bytes.Contains(data, []byte(TokenPrefix)) {
		return data, nil
	}
	var failed error
	out := tokenPattern.ReplaceAllFunc(data, func(tok []byte) []byte {
		m := tokenPattern.FindSubmatch(tok)
		kind, sealed, subject := string(m[1]), m[2], string(m[3])
		erased := []byte("null")
		if kind == "s" {
			erased = []byte(`"` + Erased + `"`)
		}
		a, err := s.aead(ctx, subject, false)
		if err != nil {
			failed = err
			return tok
		}
		raw, err := base64.RawURLEncoding.DecodeString(string(sealed))
		if a == nil || err != nil || len(raw) < a.aead.NonceSize() {
			return erased
		}
		n := a.aead.NonceSize()
		plain, err := a.aead.Open(nil, raw[:n], raw[n:], []byte(subject))
		if err != nil {
			return erased // sealed under a key destroyed since
		}
		return plain
	})
	if failed != nil {
		return nil, failed
	}
	return out, nil
}

// Personal reports whether type typ has personal fields.
func (s *Shredder) Personal(typ string) bool {
	if s == nil {
		return false
	}
	_, ok := s.personal[typ]
	return ok
}

// Subject returns the data subject of instance id of type typ, if typ has
// personal fields.
func (s *Shredder) Subject(typ, id string) (string, bool) {
	if s == nil {
		return "", false
	}
	decl, ok := s.personal[typ]
	if !ok {
		return "", false
	}
	return decl.subject(id), true
}

// Destroy destroys the subject's key in the key store, and drops its
// cipher from memory even when destroying fails: the key may be gone.
func (s *Shredder) Destroy(ctx context.Context, subject string) error {
	purge, err := s.DestroyKey(ctx, subject)
	if err != nil {
		return err
	}
	return purge(ctx)
}

// Purger is a Keys whose Destroy first deletes the key, at once, and then
// may wait long to purge its former copies from the storage (the SQLite
// store waits for the readers of older snapshots, a backup running).
// DestroyKey does the first, and returns the second, which the caller
// runs without holding anything up.
type Purger interface {
	DestroyKey(ctx context.Context, subject string) (purge func(context.Context) error, err error)
}

// DestroyKey destroys the subject's key as Destroy does, but leaves to
// the function it returns, with a Purger, the purge of its former copies.
// The key is deleted, and its cipher dropped, when it returns.
func (s *Shredder) DestroyKey(ctx context.Context, subject string) (purge func(context.Context) error, err error) {
	if p, ok := s.keys.(Purger); ok {
		purge, err = p.DestroyKey(ctx, subject)
	} else {
		err = s.keys.Destroy(ctx, subject)
	}
	s.Forget(subject)
	if purge == nil || err != nil {
		purge = func(context.Context) error { return nil }
	}
	return purge, err
}

// KeySet returns the key store as a KeySet, if it is one.
func (s *Shredder) KeySet() (KeySet, bool) {
	ks, ok := s.keys.(KeySet)
	return ks, ok
}
