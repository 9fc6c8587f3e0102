package engine

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
	"slices"
	"sort"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/plaithq/plait"
)

// Crypto-shredding. The personal fields of a type (plait.Personal) are
// sealed when committed: each value is replaced by a token, a string
// holding the value encrypted with AES-256-GCM under its data subject's
// key, and the subject's id. Everything inside the engine — the log, the
// materialized state, the feed the reactors read, the views they write —
// holds tokens; the public reads open them. Forget destroys the subject's
// key: from then on every token of the subject, wherever it was copied,
// opens as erased.

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

// tokenPrefix starts every sealed value. A token is
// "plait:sealed:1:KIND:SEALED:SUBJECT", KIND "s" for a string and "j" for
// any other JSON value, SEALED the nonce and ciphertext in unpadded
// base64url, SUBJECT the data subject.
const tokenPrefix = "plait:sealed:1:"

// tokenPattern matches a token as a JSON string literal: none of its
// characters needs escaping.
var tokenPattern = regexp.MustCompile(`"plait:sealed:1:([sj]):([A-Za-z0-9_-]+):([A-Za-z0-9._:@+-]+)"`)

// warnUndeclaredCopies logs, once per field, a top-level field of a view's
// new state that holds a sealed value its type does not declare with
// plait.PersonalCopies: lists would filter and sort on its ciphertext.
func (e *Engine) warnUndeclaredCopies(def plait.Definition, state json.RawMessage) {
	if !def.Settings().View || !bytes.Contains(state, []byte(tokenPrefix)) {
		return
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(state, &fields) != nil {
		return
	}
	declared := def.Settings().PersonalCopies
	for f, v := range fields {
		if slices.Contains(declared, f) || !bytes.HasPrefix(v, []byte(`"`+tokenPrefix)) {
			continue
		}
		if _, warned := e.copiesWarned.LoadOrStore(def.Type()+"."+f, true); !warned {
			e.log.Warn("a view field holds personal data sealed by another type without declaring it: lists may filter and sort it as ciphertext; declare it with plait.PersonalCopies",
				"type", def.Type(), "field", f)
		}
	}
}

// Erased is what a sealed string reads as once its subject is forgotten;
// any other sealed value reads as null.
const Erased = "[erased]"

// maxCiphers is how many subjects' ciphers a shredder keeps in memory, the
// least recently used dropped first: a dropped one is read from the key
// store again when next needed.
const maxCiphers = 4096

// shredder seals and opens personal values.
type shredder struct {
	keys     Keys
	personal map[string]personalDecl // by aggregate type

	mu sync.Mutex
	// ciphers holds the ciphers of the subjects used last, by subject; a
	// nil one: known to have no key.
	ciphers *simplelru.LRU[string, *subjectCipher]
	// forgets counts the calls of forget: a key read from the key store
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

// newShredder returns nil when no type of the app has personal fields.
func newShredder(app plait.App, keys Keys) (*shredder, error) {
	ciphers, err := simplelru.NewLRU[string, *subjectCipher](maxCiphers, nil)
	if err != nil {
		return nil, err
	}
	s := &shredder{keys: keys, personal: map[string]personalDecl{}, ciphers: ciphers}
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
		return nil, errors.New("engine: the application has personal fields: it needs a key store (Options.Keys, or a store that keeps keys)")
	}
	return s, nil
}

// aead returns the subject's cipher, creating its key if create.
func (s *shredder) aead(ctx context.Context, subject string, create bool) (*subjectCipher, error) {
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
	// one must not hide that key: only a forget drops a cipher.
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

// stale compares the ciphers in memory with the key store: it returns the
// subjects whose key in memory the store no longer has (another instance
// forgot them, and may have made a new key since), for the caller to
// forget, and drops at once the subjects remembered without a key that
// have one now.
func (s *shredder) stale(ctx context.Context, ks KeySet) ([]string, error) {
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

// forget drops the subject's cipher from memory, once its key is destroyed.
func (s *shredder) forget(subject string) {
	s.mu.Lock()
	s.ciphers.Remove(subject)
	s.forgets++
	s.mu.Unlock()
}

// seal replaces the personal top-level fields of data (an object of an
// instance id of type typ) with tokens. Data of a type without personal
// fields, not an object, or whose fields are sealed already is returned as
// it is.
func (s *shredder) seal(ctx context.Context, typ, id string, data json.RawMessage) (json.RawMessage, error) {
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
		if !ok || string(v) == "null" || bytes.HasPrefix(v, []byte(`"`+tokenPrefix)) {
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
		obj[f] = json.RawMessage(`"` + tokenPrefix + kind + ":" + base64.RawURLEncoding.EncodeToString(sealed) + ":" + subject + `"`)
		changed = true
	}
	if !changed {
		return data, nil
	}
	return json.Marshal(obj)
}

// open replaces every token in data, wherever it is, with the value it
// seals, or with the erased value when its subject's key is gone.
func (s *shredder) open(ctx context.Context, data json.RawMessage) (json.RawMessage, error) {
	if s == nil || !bytes.Contains(data, []byte(tokenPrefix)) {
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

// sealBatch seals the personal fields of a batch in place, before it is
// committed: each command's data, each event's data and each new state of
// a type with personal fields. A nil shredder (no personal fields) leaves
// the batch as it is.
func (s *shredder) sealBatch(ctx context.Context, batch []*Processed) error {
	if s == nil {
		return nil
	}
	for _, p := range batch {
		out := &p.Outcome
		var err error
		if out.Command.Data, err = s.seal(ctx, out.Command.Type, out.Command.AggregateID, out.Command.Data); err != nil {
			return err
		}
		for i := range out.Events {
			ev := &out.Events[i]
			if ev.Data, err = s.seal(ctx, ev.Type, ev.AggregateID, ev.Data); err != nil {
				return err
			}
		}
		if in := p.Instance; in != nil {
			sealed, err := s.seal(ctx, in.Type, in.ID, in.State)
			if err != nil {
				return err
			}
			// The record is shared with the partition's cache, which keeps
			// the plain state for decide: replace it, do not write into it.
			copied := *in
			copied.State = sealed
			p.Instance = &copied
		}
	}
	return nil
}

// openOutcome opens the tokens of an outcome's command and events.
func (s *shredder) openOutcome(ctx context.Context, out plait.Outcome) (plait.Outcome, error) {
	if s == nil {
		return out, nil
	}
	var err error
	if out.Command.Data, err = s.open(ctx, out.Command.Data); err != nil {
		return out, err
	}
	out.Events, err = s.openEvents(ctx, out.Events)
	return out, err
}

// openEvents opens the tokens of events, into a new slice when any has one.
func (s *shredder) openEvents(ctx context.Context, evs []plait.Event) ([]plait.Event, error) {
	if s == nil {
		return evs, nil
	}
	var copied []plait.Event
	for i := range evs {
		data, err := s.open(ctx, evs[i].Data)
		if err != nil {
			return nil, err
		}
		if copied == nil && !bytes.Equal(data, evs[i].Data) {
			copied = append([]plait.Event(nil), evs...)
		}
		if copied != nil {
			copied[i].Data = data
		}
	}
	if copied == nil {
		return evs, nil
	}
	return copied, nil
}

// openItems opens the tokens of feed items, copying those it changes: the
// items may be the engine's memory of the feed.
func (s *shredder) openItems(ctx context.Context, items []Item) ([]Item, error) {
	out := items
	copied := false
	for i, it := range items {
		switch {
		case it.Event != nil:
			data, err := s.open(ctx, it.Event.Data)
			if err != nil {
				return nil, err
			}
			if bytes.Equal(data, it.Event.Data) {
				continue
			}
			ev := *it.Event
			ev.Data = data
			it.Event = &ev
		case it.Outcome != nil:
			o, err := s.openOutcome(ctx, *it.Outcome)
			if err != nil {
				return nil, err
			}
			it.Outcome = &o
		default:
			continue
		}
		if !copied {
			out = append([]Item(nil), items...)
			copied = true
		}
		out[i] = it
	}
	return out, nil
}

// sealingLog seals the personal fields of commands on their way into an
// external command log, so that the log's records (Kafka topics, say) hold
// no personal value in the clear. The engine opens them when it decides
// them (openCommands, in handleLogBatch).
type sealingLog struct {
	CommandLog
	sh *shredder
}

// Append seals cmd's personal fields and appends it.
func (l sealingLog) Append(ctx context.Context, cmd plait.Command, sender *plait.User) error {
	data, err := l.sh.seal(ctx, cmd.Type, cmd.AggregateID, cmd.Data)
	if err != nil {
		return err
	}
	cmd.Data = data
	return l.CommandLog.Append(ctx, cmd, sender)
}

// openCommands returns the commands with their personal fields opened, for
// decide, into a new slice: a field of a subject forgotten since the
// command was appended opens as erased.
func (s *shredder) openCommands(ctx context.Context, cmds []plait.Command) ([]plait.Command, error) {
	out := make([]plait.Command, len(cmds))
	for i, c := range cmds {
		if _, ok := s.personal[c.Type]; ok {
			data, err := s.open(ctx, c.Data)
			if err != nil {
				return nil, err
			}
			c.Data = data
		}
		out[i] = c
	}
	return out, nil
}
