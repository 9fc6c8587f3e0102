package orderdesk

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/plaithq/plait"
)

// The commands and events of an order, and its statuses.
const (
	CmdPlace        = "place"
	CmdShip         = "ship"
	CmdCancel       = "cancel"
	EvtPlaced       = "placed"
	EvtShipped      = "shipped"
	EvtCancelled    = "cancelled"
	StatusPlaced    = "placed"
	StatusShipped   = "shipped"
	StatusCancelled = "cancelled"
)

// OrderState is an order's document: what was placed, and where the order
// stands. An order exists once it has a status.
type OrderState struct {
	OrderPlaced
	Status string `json:"status"`
}

// Line is one line of an order: qty units of the article sku at price each.
type Line struct {
	SKU   string  `json:"sku"`
	Qty   int     `json:"qty"`
	Price float64 `json:"price"`
}

// PlaceLine is a line as the place command gives it: a quantity or price
// left out is nil, told apart from a 0 given.
type PlaceLine struct {
	SKU   string   `json:"sku"`
	Qty   *int     `json:"qty"`
	Price *float64 `json:"price"`
}

// The data of the order's commands and events.
type (
	PlaceOrder struct {
		CustomerID string      `json:"customerId"`
		Lines      []PlaceLine `json:"lines"`
		// Currency is the ISO 4217 code of the prices, DefaultCurrency
		// when not given.
		Currency string `json:"currency,omitempty"`
	}
	ShipOrder   struct{}
	CancelOrder struct {
		Reason string `json:"reason"`
	}
	// OrderPlaced is the data of the placed event, version 2: version 1
	// had no currency (see OrderPlacedV1 and PlacedV1ToV2).
	OrderPlaced struct {
		CustomerID string     `json:"customerId"`
		Lines      []Line     `json:"lines"`
		Total      float64    `json:"total"` // Σ qty × price
		Currency   string     `json:"currency"`
		PlacedAt   plait.Time `json:"placedAt"`
	}
	// OrderPlacedV1 is the data of the placed event as version 1 recorded
	// it: every price was in euros.
	OrderPlacedV1 struct {
		CustomerID string     `json:"customerId"`
		Lines      []Line     `json:"lines"`
		Total      float64    `json:"total"`
		PlacedAt   plait.Time `json:"placedAt"`
	}
	OrderShipped struct {
		At time.Time `json:"at"`
	}
	OrderCancelled struct {
		Reason string    `json:"reason"`
		At     time.Time `json:"at"`
	}
)

// Order is the order aggregate type.
func Order() *plait.Aggregate[OrderState] {
	return plait.NewAggregate(OrderType,
		plait.WithAccess[OrderState](Access),
		plait.Handle(CmdPlace, func(s OrderState, c plait.Cmd[PlaceOrder]) ([]plait.Change, error) {
			if s.Status != "" {
				return nil, plait.Reject("", CodeExists, "this order was placed already")
			}
			var p plait.Problems
			placed := OrderPlaced{CustomerID: c.Data.CustomerID, Currency: c.Data.Currency, PlacedAt: plait.Time{Time: c.At}}
			if placed.Currency == "" {
				placed.Currency = DefaultCurrency
			}
			addIf(&p, !isCurrency(placed.Currency), "currency", plait.CodeInvalid, "a currency is three capital letters, such as EUR")
			addIf(&p, strings.TrimSpace(c.Data.CustomerID) == "", "customerId", plait.CodeRequired, "a customer is required")
			addIf(&p, strings.TrimSpace(c.Data.CustomerID) != "" && !plait.ValidID(c.Data.CustomerID), "customerId", plait.CodeInvalid,
				"no customer can have this id: "+plait.IDRule)
			addIf(&p, len(c.Data.Lines) == 0, "lines", plait.CodeRequired, "an order has at least one line")
			for i, l := range c.Data.Lines {
				at := fmt.Sprintf("lines[%d].", i)
				l.SKU = strings.TrimSpace(l.SKU)
				addIf(&p, l.SKU == "", at+"sku", plait.CodeRequired, "an article is required")
				addIf(&p, l.Qty == nil, at+"qty", plait.CodeRequired, "a quantity is required")
				addIf(&p, l.Qty != nil && *l.Qty < 1, at+"qty", plait.CodeInvalid, "the quantity is at least 1")
				addIf(&p, l.Price == nil, at+"price", plait.CodeRequired, "a price is required")
				addIf(&p, l.Price != nil && *l.Price < 0, at+"price", plait.CodeInvalid, "the price cannot be negative")
				if l.Qty != nil && l.Price != nil {
					price := *l.Price
					if price == 0 {
						price = 0 // a price of -0 is 0
					}
					placed.Lines = append(placed.Lines, Line{SKU: l.SKU, Qty: *l.Qty, Price: price})
				}
			}
			if err := p.Err(); err != nil {
				return nil, err // the total of lines that break the rules means nothing
			}
			var ok bool
			placed.Total, ok = total(placed.Lines)
			addIf(&p, !ok, "lines", plait.CodeInvalid, "the order's total must be less than 10^15")
			return emitValid(&p, plait.Emit(EvtPlaced, placed))
		}),
		plait.Handle(CmdShip, func(s OrderState, c plait.Cmd[ShipOrder]) ([]plait.Change, error) {
			return move(s, StatusShipped, plait.Emit(EvtShipped, OrderShipped{At: c.At}))
		}),
		plait.Handle(CmdCancel, func(s OrderState, c plait.Cmd[CancelOrder]) ([]plait.Change, error) {
			return move(s, StatusCancelled, plait.Emit(EvtCancelled, OrderCancelled{Reason: c.Data.Reason, At: c.At}))
		}),
		plait.Apply(EvtPlaced, func(_ OrderState, e OrderPlaced) OrderState { return OrderState{OrderPlaced: e, Status: StatusPlaced} }),
		plait.Version[OrderState](EvtPlaced, 2),
		plait.Schema[OrderState](CmdPlace, PlaceOrderSchema),
		plait.Schema[OrderState](CmdShip, ShipOrderSchema),
		plait.Schema[OrderState](CmdCancel, CancelOrderSchema),
		plait.Apply(EvtShipped, func(s OrderState, _ OrderShipped) OrderState {
			return OrderState{OrderPlaced: s.OrderPlaced, Status: StatusShipped}
		}),
		plait.Apply(EvtCancelled, func(s OrderState, _ OrderCancelled) OrderState {
			return OrderState{OrderPlaced: s.OrderPlaced, Status: StatusCancelled}
		}),
		plait.Indexed[OrderState]("customerId", "status", "placedAt"),
	)
}

// DefaultCurrency is the currency of an order placed without one, and of
// every order placed before orders had a currency.
const DefaultCurrency = "EUR"

// isCurrency reports whether code looks like an ISO 4217 code.
func isCurrency(code string) bool {
	if len(code) != 3 {
		return false
	}
	for _, r := range code {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// PlacedV1ToV2 is the upcaster of the placed event from version 1, which
// had no currency because every price was in euros.
func PlacedV1ToV2() plait.Upcaster {
	return plait.UpcastAs(OrderType, EvtPlaced, 1, func(o OrderPlacedV1) OrderPlaced {
		return OrderPlaced{CustomerID: o.CustomerID, Lines: o.Lines, Total: o.Total, Currency: DefaultCurrency, PlacedAt: o.PlacedAt}
	})
}

// move emits change, which moves a placed order on to status to. Only a
// placed order moves: a shipped or cancelled one stays as it is.
func move(s OrderState, to string, change plait.Change) ([]plait.Change, error) {
	switch s.Status {
	case "":
		return nil, plait.Reject("", CodeNotFound, "there is no such order")
	case StatusPlaced:
		return []plait.Change{change}, nil
	}
	return nil, plait.Reject("", CodeInvalidState, fmt.Sprintf("this order is %s: it cannot be %s", s.Status, to))
}

// maxTotal bounds an order's total: up to it, a float64 holds every cent.
const maxTotal = 1e15

// total is Σ qty × price, summed in decimal as the prices were written, so
// that 3 × 0.1 is 0.3 and not 0.30000000000000004; ok is false when the
// total reaches maxTotal.
func total(lines []Line) (sum float64, ok bool) {
	exact := new(big.Rat)
	for _, l := range lines {
		price, _ := new(big.Rat).SetString(strconv.FormatFloat(l.Price, 'f', -1, 64))
		exact.Add(exact, price.Mul(price, new(big.Rat).SetInt64(int64(l.Qty))))
	}
	sum, _ = exact.Float64()
	return sum, sum < maxTotal
}
