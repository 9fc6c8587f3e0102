package orderdesk_test

import (
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/plaittest"
)

var (
	orderList      = orderdesk.OrderList()
	customerOrders = orderdesk.CustomerOrders()
	placedAt       = plaittest.FixedTime
	o1Placed       = plait.Lineage{Type: "order", AggregateID: "o1", Seq: 1}
	o1Shipped      = plait.Lineage{Type: "order", AggregateID: "o1", Seq: 2}
	c1Created      = plait.Lineage{Type: "customer", AggregateID: "c1", Seq: 1}
	c1Renamed      = plait.Lineage{Type: "customer", AggregateID: "c1", Seq: 2}
	c1Renamed2     = plait.Lineage{Type: "customer", AggregateID: "c1", Seq: 3}
)

// event is an event of a source aggregate as a reactor receives it, from
// ann when the orders were placed.
func event(typ, id string, seq int64, name string, data any) plait.Event {
	ev := plaittest.Happened(typ, id, seq, name, data)
	ev.User, ev.At = "ann", placedAt
	return ev
}

// dispatch is the part of a command a reactor decides: where it goes and what it says.
type dispatch struct {
	Type, AggregateID, Name string
	Data                    any
}

// thenCommands checks that reactor r sends exactly want on ev, each command
// caused by ev and taken by the view it goes to, and returns the commands.
func thenCommands(t *testing.T, r *plait.Reactor, ev plait.Event, want ...dispatch) []plait.Command {
	t.Helper()
	sent := make([]plaittest.Sent, len(want))
	for i, w := range want {
		sent[i] = plaittest.Sent{Type: w.Type, AggregateID: w.AggregateID, Name: w.Name, Data: w.Data}
	}
	return plaittest.React(r, ev, orderList, customerOrders).ThenCommands(t, sent...).Commands()
}

func TestAPlacedOrderFeedsItsListItemAndItsCustomersOrders(t *testing.T) {
	ev := event("order", "o1", 1, "placed", M{"customerId": "c1", "lines": twoLines, "total": 21, "currency": "EUR", "placedAt": plait.Time{Time: placedAt}})
	cmds := thenCommands(t, orderdesk.OrderListFeed(), ev,
		dispatch{"orderList", "o1", "setOrder", M{"source": o1Placed, "customerId": "c1", "total": 21, "currency": "EUR", "lines": 2, "placedAt": plait.Time{Time: placedAt}}},
		dispatch{"orderList", "o1", "setStatus", M{"source": o1Placed, "status": "placed"}},
		dispatch{"customerOrders", "c1", "addOrder", M{"source": o1Placed, "orderId": "o1", "owner": "ann"}},
	)
	again, _ := orderdesk.OrderListFeed().React(ev)
	for i, c := range cmds {
		if c.ID != again[i].ID || c.CausationID != ev.ID || c.CorrelationID != ev.CorrelationID {
			t.Errorf("command %d: id %s, then %s, caused by %s in %s: want the same id each time, caused by %s in %s",
				i, c.ID, again[i].ID, c.CausationID, c.CorrelationID, ev.ID, ev.CorrelationID)
		}
	}
}

func TestShippedAndCancelledOrdersSetTheItemsStatus(t *testing.T) {
	thenCommands(t, orderdesk.OrderListFeed(), event("order", "o1", 2, "shipped", M{"at": placedAt}),
		dispatch{"orderList", "o1", "setStatus", M{"source": o1Shipped, "status": "shipped"}})
	o2Cancelled := plait.Lineage{Type: "order", AggregateID: "o2", Seq: 2}
	thenCommands(t, orderdesk.OrderListFeed(), event("order", "o2", 2, "cancelled", M{"reason": "r", "at": placedAt}),
		dispatch{"orderList", "o2", "setStatus", M{"source": o2Cancelled, "status": "cancelled"}})
}

func TestCustomerNamesGoToTheirCustomerOrders(t *testing.T) {
	thenCommands(t, orderdesk.OrderListFeed(), event("customer", "c1", 1, "created", M{"name": "Ann", "email": "ann@example.com"}),
		dispatch{"customerOrders", "c1", "setName", M{"source": c1Created, "name": "Ann", "owner": "ann"}})
	// A rename tells no owner: whoever sent it, the customer stays its creator's.
	thenCommands(t, orderdesk.OrderListFeed(), event("customer", "c1", 2, "renamed", M{"name": "Anna"}),
		dispatch{"customerOrders", "c1", "setName", M{"source": c1Renamed, "name": "Anna"}})
	thenCommands(t, orderdesk.OrderListFeed(), event("customer", "c1", 3, "emailChanged", M{"email": "a@example.com"}))
}

func TestANewNameFansOutToEveryOrderOfTheCustomer(t *testing.T) {
	ev := event("customerOrders", "c1", 3, "nameSet", M{"source": c1Renamed, "name": "Anna", "orderIds": []string{"o1", "o2"}})
	thenCommands(t, orderdesk.CustomerNameFanout(), ev,
		dispatch{"orderList", "o1", "setCustomerName", M{"source": c1Renamed, "customerName": "Anna"}},
		dispatch{"orderList", "o2", "setCustomerName", M{"source": c1Renamed, "customerName": "Anna"}},
	)
}

func TestANewOrderGetsTheNameKnownSoFar(t *testing.T) {
	known := event("customerOrders", "c1", 2, "orderAdded", M{"source": o1Placed, "orderId": "o1", "name": "Ann", "nameSource": c1Created})
	thenCommands(t, orderdesk.CustomerNameFanout(), known,
		dispatch{"orderList", "o1", "setCustomerName", M{"source": c1Created, "customerName": "Ann"}})
	unknown := event("customerOrders", "c1", 1, "orderAdded", M{"source": o1Placed, "orderId": "o1", "name": "", "nameSource": plait.Lineage{}})
	thenCommands(t, orderdesk.CustomerNameFanout(), unknown)
}

func TestSetOrderFillsTheItemWithLineage(t *testing.T) {
	plaittest.Given(orderList).For("o1").
		When("setOrder", orderdesk.SetOrder{Source: o1Placed, Total: 21, Lines: 2, PlacedAt: plait.Time{Time: placedAt}}).
		ThenEvents(t, plait.Emit("orderSet", orderdesk.SetOrder{Source: o1Placed, Total: 21, Lines: 2, PlacedAt: plait.Time{Time: placedAt}}).
			From(o1Placed, "total", "currency", "lines", "placedAt")).
		ThenState(t, M{"customerName": "", "total": 21, "status": "", "lines": 2, "placedAt": plait.Time{Time: placedAt}})
}

// Before a name of its customer arrives, an item's customerName comes from
// the customer its order names, as of none of that customer's events; a
// name that came first keeps its lineage.
func TestAnItemsCustomerNameHasALineageBeforeTheNameArrives(t *testing.T) {
	c1None := plait.Lineage{Type: "customer", AggregateID: "c1"}
	set := orderdesk.SetOrder{Source: o1Placed, CustomerID: "c1", Total: 21, Lines: 2, PlacedAt: plait.Time{Time: placedAt}}
	plaittest.Given(orderList).For("o1").
		When("setOrder", set).
		ThenEvents(t, plait.Emit("orderSet", set).From(o1Placed, "total", "currency", "lines", "placedAt").From(c1None, "customerName")).
		ThenState(t, M{"customerName": "", "total": 21, "status": "", "lines": 2, "placedAt": plait.Time{Time: placedAt}})

	named := plaittest.Given(orderList,
		plait.Emit("customerNameSet", orderdesk.SetCustomerName{Source: c1Created, CustomerName: "Ann"}).From(c1Created, "customerName"),
	).For("o1")
	named.When("setOrder", set).
		ThenEvents(t, plait.Emit("orderSet", set).From(o1Placed, "total", "currency", "lines", "placedAt")).
		ThenState(t, M{"customerName": "Ann", "total": 21, "status": "", "lines": 2, "placedAt": plait.Time{Time: placedAt}})

	// And the name, when it comes, replaces the seq 0 lineage.
	plaittest.Given(orderList, plait.Emit("orderSet", set).From(o1Placed, "total", "currency", "lines", "placedAt").From(c1None, "customerName")).
		For("o1").
		When("setCustomerName", orderdesk.SetCustomerName{Source: c1Created, CustomerName: "Ann"}).
		ThenEvents(t, plait.Emit("customerNameSet", orderdesk.SetCustomerName{Source: c1Created, CustomerName: "Ann"}).From(c1Created, "customerName"))
}

func TestAnItemIgnoresStaleUpdates(t *testing.T) {
	shippedItem := plaittest.Given(orderList,
		plait.Emit("statusSet", orderdesk.SetStatus{Source: o1Shipped, Status: "shipped"}).From(o1Shipped, "status"),
		plait.Emit("customerNameSet", orderdesk.SetCustomerName{Source: c1Renamed, CustomerName: "Anna"}).From(c1Renamed, "customerName"),
	).For("o1")
	shippedItem.When("setStatus", orderdesk.SetStatus{Source: o1Placed, Status: "placed"}).ThenNoEvents(t)
	shippedItem.When("setStatus", orderdesk.SetStatus{Source: o1Shipped, Status: "shipped"}).ThenNoEvents(t)
	shippedItem.When("setCustomerName", orderdesk.SetCustomerName{Source: c1Created, CustomerName: "Ann"}).ThenNoEvents(t)
	shippedItem.When("setOrder", orderdesk.SetOrder{Source: o1Placed, Total: 21, Lines: 2, PlacedAt: plait.Time{Time: placedAt}}).
		ThenEvents(t, plait.Emit("orderSet", orderdesk.SetOrder{Source: o1Placed, Total: 21, Lines: 2, PlacedAt: plait.Time{Time: placedAt}}).
			From(o1Placed, "total", "currency", "lines", "placedAt")).
		ThenState(t, M{"customerName": "Anna", "total": 21, "status": "shipped", "lines": 2, "placedAt": plait.Time{Time: placedAt}})
	shippedItem.When("setCustomerName", orderdesk.SetCustomerName{Source: c1Renamed2, CustomerName: "Annie"}).
		ThenEvents(t, plait.Emit("customerNameSet", orderdesk.SetCustomerName{Source: c1Renamed2, CustomerName: "Annie"}).
			From(c1Renamed2, "customerName"))
}

func TestCustomerOrdersRemembersTheNameAndTheOrders(t *testing.T) {
	o2Placed := plait.Lineage{Type: "order", AggregateID: "o2", Seq: 1}
	plaittest.Given(customerOrders).For("c1").
		When("addOrder", orderdesk.AddOrder{Source: o1Placed, OrderID: "o1"}).
		ThenEvents(t, plait.Emit("orderAdded", orderdesk.OrderAdded{Source: o1Placed, OrderID: "o1"}).From(o1Placed, "orderIds")).
		ThenState(t, M{"name": "", "nameSource": plait.Lineage{}, "orderIds": []string{"o1"}})

	withOrder := plaittest.Given(customerOrders,
		plait.Emit("orderAdded", orderdesk.OrderAdded{Source: o1Placed, OrderID: "o1"}),
		plait.Emit("nameSet", orderdesk.NameSet{Source: c1Created, Name: "Ann", OrderIDs: []string{"o1"}}),
	).For("c1")
	withOrder.When("setName", orderdesk.SetName{Source: c1Renamed, Name: "Anna"}).
		ThenEvents(t, plait.Emit("nameSet", orderdesk.NameSet{Source: c1Renamed, Name: "Anna", OrderIDs: []string{"o1"}}).
			From(c1Renamed, "name")).
		ThenState(t, M{"name": "Anna", "nameSource": c1Renamed, "orderIds": []string{"o1"}})
	withOrder.When("addOrder", orderdesk.AddOrder{Source: o2Placed, OrderID: "o2"}).
		ThenEvents(t, plait.Emit("orderAdded", orderdesk.OrderAdded{Source: o2Placed, OrderID: "o2", Name: "Ann", NameSource: c1Created}).
			From(o2Placed, "orderIds")).
		ThenState(t, M{"name": "Ann", "nameSource": c1Created, "orderIds": []string{"o1", "o2"}})
	withOrder.When("addOrder", orderdesk.AddOrder{Source: o1Placed, OrderID: "o1"}).ThenNoEvents(t)
	withOrder.When("setName", orderdesk.SetName{Source: c1Created, Name: "Ann"}).ThenNoEvents(t)
}

// TestANameGoesOnlyToItemsOfTheCustomersOwner: a customer is its
// creator's. An order another user placed may name it, but that user's
// list item does not get the name: not when the order is added, and not
// when the customer is renamed. Orders of unknown owner (kept before
// owners were) still get it.
func TestANameGoesOnlyToItemsOfTheCustomersOwner(t *testing.T) {
	o2Placed := plait.Lineage{Type: "order", AggregateID: "o2", Seq: 1}
	o3Placed := plait.Lineage{Type: "order", AggregateID: "o3", Seq: 1}
	anns := plaittest.Given(customerOrders,
		plait.Emit("nameSet", orderdesk.NameSet{Source: c1Created, Name: "Ann", Owner: "ann", OrderIDs: []string{}}),
	).For("c1")
	anns.When("addOrder", orderdesk.AddOrder{Source: o2Placed, OrderID: "o2", Owner: "bob"}).
		ThenEvents(t, plait.Emit("orderAdded", orderdesk.OrderAdded{Source: o2Placed, OrderID: "o2", Owner: "bob"}).From(o2Placed, "orderIds"))
	anns.When("addOrder", orderdesk.AddOrder{Source: o1Placed, OrderID: "o1", Owner: "ann"}).
		ThenEvents(t, plait.Emit("orderAdded", orderdesk.OrderAdded{Source: o1Placed, OrderID: "o1", Owner: "ann", Name: "Ann", NameSource: c1Created}).
			From(o1Placed, "orderIds"))

	withOrders := plaittest.Given(customerOrders,
		plait.Emit("orderAdded", orderdesk.OrderAdded{Source: o2Placed, OrderID: "o2", Owner: "bob"}),
		plait.Emit("nameSet", orderdesk.NameSet{Source: c1Created, Name: "Ann", Owner: "ann", OrderIDs: []string{}}),
		plait.Emit("orderAdded", orderdesk.OrderAdded{Source: o1Placed, OrderID: "o1", Owner: "ann", Name: "Ann", NameSource: c1Created}),
		plait.Emit("orderAdded", orderdesk.OrderAdded{Source: o3Placed, OrderID: "o3", Name: "Ann", NameSource: c1Created}),
	).For("c1")
	withOrders.When("setName", orderdesk.SetName{Source: c1Renamed, Name: "Anna"}).
		ThenEvents(t, plait.Emit("nameSet", orderdesk.NameSet{Source: c1Renamed, Name: "Anna", OrderIDs: []string{"o1", "o3"}}).From(c1Renamed, "name")).
		ThenState(t, M{"name": "Anna", "nameSource": c1Renamed, "owner": "ann", "orderIds": []string{"o2", "o1", "o3"},
			"orderOwners": M{"o1": "ann", "o2": "bob"}})

	// Created after another user's order named it: the name still does not go there.
	early := plaittest.Given(customerOrders,
		plait.Emit("orderAdded", orderdesk.OrderAdded{Source: o2Placed, OrderID: "o2", Owner: "bob"}),
	).For("c1")
	early.When("setName", orderdesk.SetName{Source: c1Created, Name: "Ann", Owner: "ann"}).
		ThenEvents(t, plait.Emit("nameSet", orderdesk.NameSet{Source: c1Created, Name: "Ann", Owner: "ann", OrderIDs: []string{}}).From(c1Created, "name"))
}
