package plait_test

import (
	"testing"

	"github.com/plaithq/plait"
)

func TestLineageSupersedes(t *testing.T) {
	c3 := plait.Lineage{Type: "customer", AggregateID: "c1", Seq: 3}
	for _, tc := range []struct {
		l, cur plait.Lineage
		want   bool
	}{
		{plait.Lineage{Type: "customer", AggregateID: "c1", Seq: 4}, c3, true},
		{c3, c3, false}, // the same update again
		{plait.Lineage{Type: "customer", AggregateID: "c1", Seq: 2}, c3, false}, // a late one
		{plait.Lineage{Type: "customer", AggregateID: "c2", Seq: 1}, c3, true},  // another instance
		{plait.Lineage{Type: "agent", AggregateID: "c1", Seq: 1}, c3, true},     // another type
		{plait.Lineage{Type: "customer", AggregateID: "c1", Seq: 1}, plait.Lineage{}, true},
		{plait.Lineage{Type: "customer", AggregateID: "c1", Seq: 1}, plait.Lineage{Type: "customer", AggregateID: "c1"}, true},
	} {
		if got := tc.l.Supersedes(tc.cur); got != tc.want {
			t.Errorf("%+v supersedes %+v = %v, want %v", tc.l, tc.cur, got, tc.want)
		}
	}
}
