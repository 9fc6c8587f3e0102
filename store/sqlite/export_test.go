package sqlite

import "context"

// WriterPragma runs a PRAGMA statement on the store's one writer
// connection and returns its value, for the fault tests: max_page_count
// set there bounds every commit, as a full disk would.
func (s *Store) WriterPragma(ctx context.Context, pragma string) (int64, error) {
	var v int64
	err := s.w.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&v)
	return v, err
}

// AwaitCommandFilter waits until the command filter has loaded the ids
// stored before Open, and reports whether it is ready.
func (s *Store) AwaitCommandFilter() bool {
	<-s.filterDone
	_, ok := s.filter.maybeHeld(nil)
	return ok
}

// DedupReads returns how many reads KnownCommands has made.
func (s *Store) DedupReads() int64 { return s.dedupReads.Load() }

// SetBeforeRestoreRename sets a function Restore calls just before it
// puts the restored copy at the store's name (where a crash would stop
// it), and returns a function that unsets it.
func SetBeforeRestoreRename(f func()) (unset func()) {
	beforeRestoreRename = f
	return func() { beforeRestoreRename = nil }
}
