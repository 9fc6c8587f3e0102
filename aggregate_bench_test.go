package plait_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/plaithq/plait"
)

// The pure core on the engine's hot path: every command is one CheckCommand
// (at submission), one Decide and one Evolve per event, each decoding and
// encoding JSON.
//
//	go test -run '^$' -bench . .

type benchOrder struct {
	Customer string      `json:"customer"`
	Lines    []benchLine `json:"lines"`
	Status   string      `json:"status"`
	Total    float64     `json:"total"`
}

type benchLine struct {
	SKU   string  `json:"sku"`
	Qty   int     `json:"qty"`
	Price float64 `json:"price"`
}

type benchPlace struct {
	Customer string      `json:"customer"`
	Lines    []benchLine `json:"lines"`
}

type benchShip struct{}

var benchOrderType = plait.NewAggregate[benchOrder]("order",
	plait.Handle("place", func(s benchOrder, c plait.Cmd[benchPlace]) ([]plait.Change, error) {
		var p plait.Problems
		if len(c.Data.Lines) == 0 {
			p.Add("lines", plait.CodeRequired, "at least one line")
		}
		for _, l := range c.Data.Lines {
			if l.Qty < 1 {
				p.Add("lines.qty", plait.CodeInvalid, "qty must be at least 1")
			}
		}
		if err := p.Err(); err != nil {
			return nil, err
		}
		return []plait.Change{plait.Emit("placed", c.Data)}, nil
	}),
	plait.Handle("ship", func(s benchOrder, c plait.Cmd[benchShip]) ([]plait.Change, error) {
		if s.Status != "placed" {
			return nil, plait.Reject("", "invalid_state", "only a placed order ships")
		}
		return []plait.Change{plait.Emit("shipped", benchShip{})}, nil
	}),
	plait.Apply("placed", func(s benchOrder, e benchPlace) benchOrder {
		s.Customer, s.Lines, s.Status = e.Customer, e.Lines, "placed"
		for _, l := range e.Lines {
			s.Total += float64(l.Qty) * l.Price
		}
		return s
	}),
	plait.Apply("shipped", func(s benchOrder, e benchShip) benchOrder { s.Status = "shipped"; return s }),
)

var benchPlaceData = json.RawMessage(`{"customer":"c-42","lines":[{"sku":"A-1","qty":2,"price":9.5},{"sku":"B-7","qty":1,"price":120},{"sku":"C-3","qty":10,"price":0.99}]}`)

func benchPlaced(b *testing.B) json.RawMessage {
	b.Helper()
	state, err := benchOrderType.Evolve(nil, "placed", benchPlaceData)
	if err != nil {
		b.Fatal(err)
	}
	return state
}

func BenchmarkCheckCommand(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := benchOrderType.CheckCommand("place", benchPlaceData); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b.Run("new instance", func(b *testing.B) {
		cmd := plait.Command{ID: "c1", Type: "order", AggregateID: "o1", Name: "place", Data: benchPlaceData, User: "u", At: at}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			changes, err := benchOrderType.Decide(plait.Current{}, cmd)
			if err != nil || len(changes) != 1 {
				b.Fatal(changes, err)
			}
		}
	})
	b.Run("existing instance", func(b *testing.B) {
		cur := plait.Current{Seq: 1, State: benchPlaced(b)}
		cmd := plait.Command{ID: "c2", Type: "order", AggregateID: "o1", Name: "ship", Data: json.RawMessage(`{}`), User: "u", At: at}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			changes, err := benchOrderType.Decide(cur, cmd)
			if err != nil || len(changes) != 1 {
				b.Fatal(changes, err)
			}
		}
	})
	b.Run("rejected", func(b *testing.B) {
		cmd := plait.Command{ID: "c3", Type: "order", AggregateID: "o2", Name: "place", Data: json.RawMessage(`{"customer":"c","lines":[]}`), User: "u", At: at}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := benchOrderType.Decide(plait.Current{}, cmd); err == nil {
				b.Fatal("not rejected")
			}
		}
	})
}

func BenchmarkEvolve(b *testing.B) {
	b.Run("new instance", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := benchOrderType.Evolve(nil, "placed", benchPlaceData); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("existing instance", func(b *testing.B) {
		state := benchPlaced(b)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := benchOrderType.Evolve(state, "shipped", json.RawMessage(`{}`)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
