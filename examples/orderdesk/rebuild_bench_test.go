package orderdesk_test

import (
	"context"
	"testing"

	"github.com/plaithq/plait/examples/orderdesk"
)

// BenchmarkRebuildOrderList rebuilds the orderList view from a log of about
// 20,000 events; it reports events/s.
func BenchmarkRebuildOrderList(b *testing.B) {
	t := &testing.T{}
	l := startLive(t)
	story(l, 50, 2000, 16)
	l.settle()
	b.ResetTimer()
	var events int64
	for i := 0; i < b.N; i++ {
		p, err := l.e.Rebuild(context.Background(), orderdesk.OrderListType, nil)
		if err != nil {
			b.Fatal(err)
		}
		events += p.Events
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
