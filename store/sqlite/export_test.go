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
