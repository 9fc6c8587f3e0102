package postgres_test

import (
	"context"
	"testing"

	"github.com/plaithq/plait/store/postgres"
	"github.com/plaithq/plait/store/postgres/pgtest"
)

// TestEvictLeaseEndsOnlyTheHolderNamed: a lease is evicted from the
// holder named, and only if it still holds it: a publisher standing by
// that watched one holder does not evict another that took over since.
func TestEvictLeaseEndsOnlyTheHolderNamed(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	ctx := context.Background()
	st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	first, ok, err := st.TryLease(ctx, "watched")
	if err != nil || !ok {
		t.Fatalf("take the lease: %v, %v", ok, err)
	}
	holder, err := st.LeaseHolder(ctx, "watched")
	if err != nil || holder == "" {
		t.Fatalf("LeaseHolder = %q, %v", holder, err)
	}
	first.Release()
	if h, err := st.LeaseHolder(ctx, "watched"); err != nil || h != "" {
		t.Fatalf("LeaseHolder once released = %q, %v; want none", h, err)
	}
	// Another session takes it: evicting the first holder ends nothing.
	pinned, err := st.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Release()
	second, ok, err := st.TryLease(ctx, "watched")
	if err != nil || !ok {
		t.Fatalf("take the lease again: %v, %v", ok, err)
	}
	defer second.Release()
	now, err := st.LeaseHolder(ctx, "watched")
	if err != nil || now == "" {
		t.Fatalf("LeaseHolder = %q, %v", now, err)
	}
	if now == holder {
		t.Skipf("the pool gave the second lease the first one's session (%s); nothing to tell apart", now)
	}
	if ended, err := st.EvictLease(ctx, "watched", holder); err != nil || ended {
		t.Fatalf("EvictLease of the former holder = %v, %v; want nothing ended", ended, err)
	}
	if err := second.Check(ctx); err != nil {
		t.Fatalf("the current holder lost its lease: %v", err)
	}
	if ended, err := st.EvictLease(ctx, "watched", now); err != nil || !ended {
		t.Fatalf("EvictLease of the current holder = %v, %v; want it ended", ended, err)
	}
	if err := second.Check(ctx); err == nil {
		t.Fatal("the evicted holder still holds its lease")
	}
}
