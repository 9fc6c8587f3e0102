package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/plaithq/plait"
)

// Forgotten reports what Forget did.
type Forgotten struct {
	Subject string
	// Items are the view instances that show personal data of the subject,
	// found by the lineage of their fields: each shows the erasure from now
	// on, and a client that shows one should read it again.
	Items []ItemRef
}

// ItemRef names one instance.
type ItemRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// ErrNoPersonalData is returned by Forget for an application that declares
// no personal fields.
var ErrNoPersonalData = errors.New("engine: the application has no personal fields")

// Forget destroys the data subject's key: every personal value of the
// subject, in the log, the materialized state, the views and the feed,
// reads as erased from then on, through every read of the engine and in
// the storage read raw (where the key store destroys its copy for good, as
// the SQLite store does). It waits for the batches in flight — the
// partitions' and, scaled out, the one being decided from the command log
// — so that no value opened before it is sealed again after it, and drops
// the plain states the partitions keep in memory. New personal data of the
// same subject is sealed under a new key. Scaled out, the other instances
// sharing the key store drop the destroyed key from memory within about a
// second (keySweepInterval). Run must be running.
func (e *Engine) Forget(ctx context.Context, subject string) (Forgotten, error) {
	f := Forgotten{Subject: subject}
	if e.shred == nil {
		return f, ErrNoPersonalData
	}
	if subject == "" {
		return f, fmt.Errorf("%w: an empty subject", plait.ErrBadID)
	}
	e.partitionGate.Lock()
	purge, err := e.shred.DestroyKey(ctx, subject)
	e.cacheEpoch.Add(1)
	e.partitionGate.Unlock()
	if err == nil {
		// The key is gone; purging its former copies from the storage
		// may wait for long readers (a backup), and holds no batch up.
		err = purge(ctx)
	}
	if err != nil {
		return f, fmt.Errorf("forget %s: %w", subject, err)
	}
	e.log.Info("data subject forgotten", "subject", subject)
	items, err := e.showing(ctx, subject)
	f.Items = items
	return f, err
}

// showing finds, by lineage, the view instances with a field that came
// from an instance whose data subject is subject. It reads every view; a
// view that copies personal data is expected to be of a size a list shows.
func (e *Engine) showing(ctx context.Context, subject string) ([]ItemRef, error) {
	var refs []ItemRef
	for _, d := range e.app.Aggregates {
		if !d.Settings().View {
			continue
		}
		q := ListQuery{Limit: 1000}
		for {
			page, err := e.store.List(ctx, d.Type(), q)
			if err != nil {
				return refs, fmt.Errorf("find the items of %s: %w", d.Type(), err)
			}
			for _, it := range page.Items {
				if e.lineageOf(it.Lineage, subject) {
					refs = append(refs, ItemRef{Type: d.Type(), ID: it.ID})
				}
			}
			if page.Next == "" {
				break
			}
			q.After = page.Next
		}
	}
	sort.Slice(refs, func(i, j int) bool {
		if refs[i].Type != refs[j].Type {
			return refs[i].Type < refs[j].Type
		}
		return refs[i].ID < refs[j].ID
	})
	return refs, nil
}

// lineageOf reports whether a field of the lineage came from an instance
// of a type with personal fields whose subject is subject.
func (e *Engine) lineageOf(lineage map[string]plait.Lineage, subject string) bool {
	for _, src := range lineage {
		if subj, ok := e.shred.Subject(src.Type, src.AggregateID); ok && subj == subject {
			return true
		}
	}
	return false
}
