package orderdesk

import (
	"cmp"
	"maps"
	"slices"

	"github.com/plaithq/plait"
)

// The commands and events of the orderList and customerOrders views, and the
// reactors that feed them.
//
//	order placed               → orderList setOrder + setStatus, customerOrders addOrder
//	order shipped, cancelled   → orderList setStatus
//	customer created, renamed  → customerOrders setName
//	customerOrders nameSet     → orderList setCustomerName for each of its orders
//	customerOrders orderAdded  → orderList setCustomerName for that order, once the name is known
//
// Every command carries the lineage of the source event, and a view applies
// it only if that event is newer than the one behind the fields it sets, so
// the views converge whatever order the commands arrive in. A stale command
// is accepted with no event.
const (
	CmdSetOrder        = "setOrder"
	CmdSetStatus       = "setStatus"
	CmdSetCustomerName = "setCustomerName"
	EvtOrderSet        = "orderSet"
	EvtStatusSet       = "statusSet"
	EvtCustomerNameSet = "customerNameSet"

	CmdSetName    = "setName"
	CmdAddOrder   = "addOrder"
	EvtNameSet    = "nameSet"
	EvtOrderAdded = "orderAdded"

	OrderListFeedName      = "orderListFeed"
	CustomerNameFanoutName = "customerNameFanout"
)

// OrderItem is the state of an orderList item, one per order (same id).
type OrderItem struct {
	CustomerName string     `json:"customerName"`
	Total        float64    `json:"total"`
	Currency     string     `json:"currency,omitempty"`
	Status       string     `json:"status"`
	Lines        int        `json:"lines"`
	PlacedAt     plait.Time `json:"placedAt,omitzero"`
}

// SetOrder is the data of the setOrder command and of the orderSet event.
// CustomerID is the customer the order names: until a name of it arrives,
// the item's customerName comes from that customer.
type SetOrder struct {
	Source     plait.Lineage `json:"source"`
	CustomerID string        `json:"customerId,omitempty"`
	Total      float64       `json:"total"`
	Currency   string        `json:"currency,omitempty"`
	Lines      int           `json:"lines"`
	PlacedAt   plait.Time    `json:"placedAt"`
}

// SetStatus is the data of the setStatus command and of the statusSet event.
type SetStatus struct {
	Source plait.Lineage `json:"source"`
	Status string        `json:"status"`
}

// SetCustomerName is the data of the setCustomerName command and of the
// customerNameSet event.
type SetCustomerName struct {
	Source       plait.Lineage `json:"source"`
	CustomerName string        `json:"customerName"`
}

// OrderList is the orderList view: one item per order, with its customer's
// name, total, status, number of lines and time placed; opts are added to
// its options.
func OrderList(opts ...plait.Option[OrderItem]) *plait.Aggregate[OrderItem] {
	return plait.NewAggregate(OrderListType, append([]plait.Option[OrderItem]{
		plait.AsView[OrderItem](),
		plait.WithAccess[OrderItem](Access),
		plait.Indexed[OrderItem]("customerName", "status", "placedAt", "total"),
		plait.Handle(CmdSetOrder, func(s OrderItem, c plait.Cmd[SetOrder]) ([]plait.Change, error) {
			changes := emitIfNewer(c.Data.Source, c.Lineage["total"], EvtOrderSet, c.Data, "total", "currency", "lines", "placedAt")
			// Every field has a lineage: before its customer's name is
			// known (the customer is not created yet, or is another
			// user's), an item's empty customerName comes from that
			// customer as of none of its events, seq 0.
			if _, named := c.Lineage["customerName"]; len(changes) == 1 && !named && c.Data.CustomerID != "" {
				changes[0] = changes[0].From(plait.Lineage{Type: CustomerType, AggregateID: c.Data.CustomerID}, "customerName")
			}
			return changes, nil
		}),
		plait.Handle(CmdSetStatus, func(s OrderItem, c plait.Cmd[SetStatus]) ([]plait.Change, error) {
			return emitIfNewer(c.Data.Source, c.Lineage["status"], EvtStatusSet, c.Data, "status"), nil
		}),
		plait.Handle(CmdSetCustomerName, func(s OrderItem, c plait.Cmd[SetCustomerName]) ([]plait.Change, error) {
			return emitIfNewer(c.Data.Source, c.Lineage["customerName"], EvtCustomerNameSet, c.Data, "customerName"), nil
		}),
		plait.Apply(EvtOrderSet, func(s OrderItem, e SetOrder) OrderItem {
			s.Total, s.Currency, s.Lines, s.PlacedAt = e.Total, e.Currency, e.Lines, e.PlacedAt
			return s
		}),
		plait.Apply(EvtStatusSet, func(s OrderItem, e SetStatus) OrderItem {
			s.Status = e.Status
			return s
		}),
		plait.Apply(EvtCustomerNameSet, func(s OrderItem, e SetCustomerName) OrderItem {
			s.CustomerName = e.CustomerName
			return s
		}),
	}, opts...)...)
}

// emitIfNewer emits the event name with data and the lineage src for fields,
// unless src does not supersede cur, the source of what the fields hold: a
// late or repeated update changes nothing.
func emitIfNewer[E any](src, cur plait.Lineage, name string, data E, fields ...string) []plait.Change {
	if !src.Supersedes(cur) {
		return nil
	}
	return []plait.Change{plait.Emit(name, data).From(src, fields...)}
}

// CustomerOrdersState is the state of a customerOrders instance, one per
// customer (same id): the customer's latest name, the lineage of the event
// that set it, and the ids of the customer's orders. Reactors cannot query;
// this view is how a rename finds the list items to update.
//
// A customer is its creator's (see CustomerAccess), and the name goes only
// to the list items of orders its creator placed: an order another user
// placed names the customer, but its list item, which that user sees,
// does not show the name. Owner is the customer's creator and OrderOwners
// each order's; unknown (from before they were kept), the name goes.
type CustomerOrdersState struct {
	Name        string            `json:"name"`
	NameSource  plait.Lineage     `json:"nameSource"`
	OrderIDs    []string          `json:"orderIds"`
	Owner       string            `json:"owner,omitempty"`
	OrderOwners map[string]string `json:"orderOwners,omitempty"`
}

// shows reports whether the list item of order id may show the customer's
// name, with owner the customer's owner.
func (s CustomerOrdersState) shows(id, owner string) bool {
	o, known := s.OrderOwners[id]
	return owner == "" || !known || o == owner
}

// shown lists the orders whose list items may show the name.
func (s CustomerOrdersState) shown(owner string) []string {
	ids := []string{}
	for _, id := range s.OrderIDs {
		if s.shows(id, owner) {
			ids = append(ids, id)
		}
	}
	return ids
}

// SetName is the data of the setName command; Owner, the customer's
// owner, comes with the name its creation gave.
type SetName struct {
	Source plait.Lineage `json:"source"`
	Name   string        `json:"name"`
	Owner  string        `json:"owner,omitempty"`
}

// AddOrder is the data of the addOrder command: the order and its owner.
type AddOrder struct {
	Source  plait.Lineage `json:"source"`
	OrderID string        `json:"orderId"`
	Owner   string        `json:"owner,omitempty"`
}

// NameSet is the data of the nameSet event: the new name, its source, the
// customer's owner when it comes with it, and the orders whose items show
// the name.
type NameSet struct {
	Source   plait.Lineage `json:"source"`
	Name     string        `json:"name"`
	Owner    string        `json:"owner,omitempty"`
	OrderIDs []string      `json:"orderIds"`
}

// OrderAdded is the data of the orderAdded event: the new order, its
// owner, and the customer's name as known so far, for its list item to
// show (empty with a zero source if not yet known, or not for that item).
type OrderAdded struct {
	Source     plait.Lineage `json:"source"`
	OrderID    string        `json:"orderId"`
	Owner      string        `json:"owner,omitempty"`
	Name       string        `json:"name"`
	NameSource plait.Lineage `json:"nameSource"`
}

// CustomerOrders is the customerOrders helper view: per customer, its name
// and the ids of its orders; opts are added to its options.
func CustomerOrders(opts ...plait.Option[CustomerOrdersState]) *plait.Aggregate[CustomerOrdersState] {
	return plait.NewAggregate(CustomerOrdersType, append([]plait.Option[CustomerOrdersState]{
		plait.AsView[CustomerOrdersState](),
		plait.WithAccess[CustomerOrdersState](InternalAccess),
		plait.Handle(CmdSetName, func(s CustomerOrdersState, c plait.Cmd[SetName]) ([]plait.Change, error) {
			owner := cmp.Or(s.Owner, c.Data.Owner)
			return emitIfNewer(c.Data.Source, s.NameSource, EvtNameSet,
				NameSet{Source: c.Data.Source, Name: c.Data.Name, Owner: c.Data.Owner, OrderIDs: s.shown(owner)}, "name"), nil
		}),
		plait.Handle(CmdAddOrder, func(s CustomerOrdersState, c plait.Cmd[AddOrder]) ([]plait.Change, error) {
			if slices.Contains(s.OrderIDs, c.Data.OrderID) {
				return nil, nil
			}
			added := OrderAdded{Source: c.Data.Source, OrderID: c.Data.OrderID, Owner: c.Data.Owner}
			if s.Owner == "" || c.Data.Owner == "" || c.Data.Owner == s.Owner {
				added.Name, added.NameSource = s.Name, s.NameSource
			}
			return []plait.Change{plait.Emit(EvtOrderAdded, added).From(c.Data.Source, "orderIds")}, nil
		}),
		plait.Apply(EvtNameSet, func(s CustomerOrdersState, e NameSet) CustomerOrdersState {
			s.Name, s.NameSource, s.OrderIDs = e.Name, e.Source, orNone(s.OrderIDs)
			s.Owner = cmp.Or(s.Owner, e.Owner)
			return s
		}),
		plait.Apply(EvtOrderAdded, func(s CustomerOrdersState, e OrderAdded) CustomerOrdersState {
			s.OrderIDs = append(s.OrderIDs, e.OrderID)
			if e.Owner != "" {
				s.OrderOwners = maps.Clone(s.OrderOwners)
				if s.OrderOwners == nil {
					s.OrderOwners = map[string]string{}
				}
				s.OrderOwners[e.OrderID] = e.Owner
			}
			return s
		}),
	}, opts...)...)
}

// OrderListFeed is the reactor that turns order and customer events into
// commands for the orderList and customerOrders views.
func OrderListFeed() *plait.Reactor {
	// created and renamed both carry the name; the reactor reads only that,
	// and from created, who sent it: the customer's owner.
	setName := func(e plait.Evt[CustomerRenamed]) []plait.Dispatch {
		return []plait.Dispatch{plait.Send(CustomerOrdersType, e.AggregateID, CmdSetName, SetName{Source: e.Source(), Name: e.Data.Name})}
	}
	created := func(e plait.Evt[CustomerRenamed]) []plait.Dispatch {
		return []plait.Dispatch{plait.Send(CustomerOrdersType, e.AggregateID, CmdSetName, SetName{Source: e.Source(), Name: e.Data.Name, Owner: e.User})}
	}
	// shipped and cancelled move the status; their data is not needed.
	setStatus := func(status string) func(plait.Evt[struct{}]) []plait.Dispatch {
		return func(e plait.Evt[struct{}]) []plait.Dispatch {
			return []plait.Dispatch{plait.Send(OrderListType, e.AggregateID, CmdSetStatus, SetStatus{Source: e.Source(), Status: status})}
		}
	}
	return plait.NewReactor(OrderListFeedName,
		plait.On(OrderType, EvtPlaced, func(e plait.Evt[OrderPlaced]) []plait.Dispatch {
			src := e.Source()
			return []plait.Dispatch{
				plait.Send(OrderListType, e.AggregateID, CmdSetOrder, SetOrder{
					Source: src, CustomerID: e.Data.CustomerID, Total: e.Data.Total, Currency: e.Data.Currency, Lines: len(e.Data.Lines), PlacedAt: e.Data.PlacedAt,
				}),
				plait.Send(OrderListType, e.AggregateID, CmdSetStatus, SetStatus{Source: src, Status: StatusPlaced}),
				plait.Send(CustomerOrdersType, e.Data.CustomerID, CmdAddOrder, AddOrder{Source: src, OrderID: e.AggregateID, Owner: e.User}),
			}
		}),
		plait.On(OrderType, EvtShipped, setStatus(StatusShipped)),
		plait.On(OrderType, EvtCancelled, setStatus(StatusCancelled)),
		plait.On(CustomerType, EvtCreated, created),
		plait.On(CustomerType, EvtRenamed, setName),
	)
}

// CustomerNameFanout is the reactor that copies a customer's name from
// customerOrders to the orderList items of the customer's orders.
func CustomerNameFanout() *plait.Reactor {
	return plait.NewReactor(CustomerNameFanoutName,
		plait.On(CustomerOrdersType, EvtNameSet, func(e plait.Evt[NameSet]) []plait.Dispatch {
			ds := make([]plait.Dispatch, len(e.Data.OrderIDs))
			for i, id := range e.Data.OrderIDs {
				ds[i] = plait.Send(OrderListType, id, CmdSetCustomerName, SetCustomerName{Source: e.Data.Source, CustomerName: e.Data.Name})
			}
			return ds
		}),
		plait.On(CustomerOrdersType, EvtOrderAdded, func(e plait.Evt[OrderAdded]) []plait.Dispatch {
			if e.Data.NameSource.Seq == 0 {
				return nil
			}
			return []plait.Dispatch{plait.Send(OrderListType, e.Data.OrderID, CmdSetCustomerName,
				SetCustomerName{Source: e.Data.NameSource, CustomerName: e.Data.Name})}
		}),
	)
}

// orNone returns ids, or an empty list (not null in JSON) when there are none.
func orNone(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}
