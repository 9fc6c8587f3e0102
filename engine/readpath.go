package engine

import (
	"context"
	"fmt"
	"sort"

	"github.com/plaithq/plait"
)

// readPath is the store as the engine uses it: every event read from the
// log goes through the upcasters here, once, whichever consumer asked for
// it. The engine finds a store's optional capabilities by type assertion on
// it, so readPath offers them all (see below).
//
// It also seals personal fields on the way in (see shred.go): a batch is
// sealed before it is committed, and the state of a type with personal
// fields is opened when loaded, for decide. Everything else it reads stays
// sealed; the engine's public reads open it.
type readPath struct {
	Store
	up *upcasters
	sh *shredder
}

// wrapStore returns the store the engine reads through. It is a readPath
// even when there is nothing to do on the way, so that the engine finds
// the same capabilities in every store, whatever the application.
func wrapStore(st Store, up *upcasters, sh *shredder) Store {
	return readPath{Store: st, up: up, sh: sh}
}

// Commit seals the batch's personal fields, then commits it.
func (s readPath) Commit(ctx context.Context, batch []*Processed) error {
	if err := s.sh.sealBatch(ctx, batch); err != nil {
		return err
	}
	return s.Store.Commit(ctx, batch)
}

// Load loads an instance, its personal fields opened for decide.
func (s readPath) Load(ctx context.Context, typ, id string) (Instance, error) {
	in, err := s.Store.Load(ctx, typ, id)
	if err != nil || s.sh == nil {
		return in, err
	}
	return s.openState(ctx, in)
}

func (s readPath) openState(ctx context.Context, in Instance) (Instance, error) {
	if !s.sh.Personal(in.Type) {
		return in, nil // a view keeps what it copied sealed
	}
	state, err := s.sh.open(ctx, in.State)
	if err != nil {
		return in, fmt.Errorf("open %s/%s: %w", in.Type, in.ID, err)
	}
	in.State = state
	return in, nil
}

// ReadFeed reads the feed with every event at its current version.
func (s readPath) ReadFeed(ctx context.Context, after int64, limit int) ([]Item, error) {
	items, err := s.Store.ReadFeed(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if it.Event != nil {
			if err := s.up.upcast(it.Event); err != nil {
				return nil, err
			}
		}
	}
	return items, nil
}

// ReadEvents reads events with every one at its current version.
func (s readPath) ReadEvents(ctx context.Context, after int64, limit int) ([]plait.Event, error) {
	evs, err := s.Store.ReadEvents(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	return evs, s.up.upcastAll(evs)
}

// Events reads an instance's history with every event at its current
// version.
func (s readPath) Events(ctx context.Context, typ, id string, after int64, limit int) ([]plait.Event, error) {
	evs, err := s.Store.Events(ctx, typ, id, after, limit)
	if err != nil {
		return nil, err
	}
	return evs, s.up.upcastAll(evs)
}

// Outcome reads a command's outcome with its events at their current
// version.
func (s readPath) Outcome(ctx context.Context, id string) (plait.Outcome, bool, error) {
	out, ok, err := s.Store.Outcome(ctx, id)
	if err != nil || !ok {
		return out, ok, err
	}
	return out, ok, s.up.upcastAll(out.Events)
}

// The engine finds a store's optional capabilities by type assertion. When
// it reads through readPath, readPath offers every one of them: passed on
// to the store when it has it, done the plain way otherwise (as the engine
// would do without it), with the events on the way upcast.

// ReadEventsOf reads the events of the given keys; see FilteredEvents.
func (s readPath) ReadEventsOf(ctx context.Context, after, upTo int64, keys []string, limit int) ([]plait.Event, error) {
	if f, ok := s.Store.(FilteredEvents); ok {
		evs, err := f.ReadEventsOf(ctx, after, upTo, keys, limit)
		if err != nil {
			return nil, err
		}
		return evs, s.up.upcastAll(evs)
	}
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	var out []plait.Event
	for len(out) < limit && after < upTo {
		evs, err := s.ReadEvents(ctx, after, rebuildPage)
		if err != nil {
			return nil, err
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			if ev.Position > upTo || len(out) == limit {
				return out, nil
			}
			after = ev.Position
			if want[ev.Type+"."+ev.Name] {
				out = append(out, ev)
			}
		}
	}
	return out, nil
}

// KnownCommands returns which of ids have an outcome; see commandsKnower.
func (s readPath) KnownCommands(ctx context.Context, ids []string) (map[string]bool, error) {
	if k, ok := s.Store.(commandsKnower); ok {
		return k.KnownCommands(ctx, ids)
	}
	known := map[string]bool{}
	for _, id := range ids {
		_, ok, err := s.Store.Outcome(ctx, id)
		if err != nil {
			return nil, err
		}
		if ok {
			known[id] = true
		}
	}
	return known, nil
}

// CommitWithOffsets commits a batch with its offsets; see OffsetCommitter.
// New refuses a command log over a store without it.
func (s readPath) CommitWithOffsets(ctx context.Context, batch []*Processed, offsets []Offset) error {
	oc, ok := s.Store.(OffsetCommitter)
	if !ok {
		return fmt.Errorf("engine: %T does not commit offsets", s.Store)
	}
	if err := s.sh.sealBatch(ctx, batch); err != nil {
		return err
	}
	return oc.CommitWithOffsets(ctx, batch, offsets)
}

// ViewGenerations returns the views' generations; see ViewFence. Over a
// store without a fence it returns nil, and batches commit unfenced.
func (s readPath) ViewGenerations(ctx context.Context, types []string) (map[string]int64, error) {
	if vf, ok := s.Store.(ViewFence); ok {
		return vf.ViewGenerations(ctx, types)
	}
	return nil, nil
}

// CommitFenced commits a batch behind the views' fence; see ViewFence.
func (s readPath) CommitFenced(ctx context.Context, batch []*Processed, offsets []Offset, fence map[string]int64) error {
	vf, ok := s.Store.(ViewFence)
	if !ok {
		return fmt.Errorf("engine: %T has no view fence", s.Store)
	}
	if err := s.sh.sealBatch(ctx, batch); err != nil {
		return err
	}
	return vf.CommitFenced(ctx, batch, offsets, fence)
}

// LoadMany loads many instances of one type, by id; an instance that does
// not exist is absent.
func (s readPath) LoadMany(ctx context.Context, typ string, ids []string) (map[string]Instance, error) {
	type manyLoader interface {
		LoadMany(ctx context.Context, typ string, ids []string) (map[string]Instance, error)
	}
	if ml, ok := s.Store.(manyLoader); ok {
		insts, err := ml.LoadMany(ctx, typ, ids)
		if err != nil || s.sh == nil {
			return insts, err
		}
		for id, in := range insts {
			in.Type = typ
			if insts[id], err = s.openState(ctx, in); err != nil {
				return nil, err
			}
		}
		return insts, nil
	}
	insts := make(map[string]Instance, len(ids))
	for _, id := range ids {
		in, err := s.Load(ctx, typ, id)
		if err != nil {
			return nil, err
		}
		if in.Seq > 0 {
			insts[id] = in
		}
	}
	return insts, nil
}

// StageView starts a copy of a view; see StagedViews. Over a store without
// copies, the copy is kept in memory and made live with ReplaceView.
func (s readPath) StageView(ctx context.Context, typ string, settings plait.Settings) (ViewCopy, error) {
	if sv, ok := s.Store.(StagedViews); ok {
		return sv.StageView(ctx, typ, settings)
	}
	return &memoryCopy{views: s.Store, typ: typ, insts: map[string]Instance{}}, nil
}

// memoryCopy is a view copy kept in memory, for a store that can only
// replace a view wholesale.
type memoryCopy struct {
	views Views
	typ   string
	insts map[string]Instance
}

func (c *memoryCopy) Write(ctx context.Context, insts []Instance) error {
	for _, in := range insts {
		c.insts[in.ID] = in
	}
	return nil
}

func (c *memoryCopy) Swap(ctx context.Context) error {
	all := make([]Instance, 0, len(c.insts))
	for _, in := range c.insts {
		if in.Seq > 0 {
			all = append(all, in)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	return c.views.ReplaceView(ctx, c.typ, all)
}

func (c *memoryCopy) Cleanup(ctx context.Context) error { return nil }
