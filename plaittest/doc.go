// Package plaittest runs given/when/then scenarios against a Plait aggregate
// type, purely: no engine, no database, no clock.
//
// Given folds a history of events into the state with the type's Evolve;
// When sends one command through CheckCommand and Decide, then folds the
// emitted events with Evolve, as the engine would; the Then methods check the
// outcome and report through a testing.TB. A test reads like the rule it
// checks:
//
//	func TestRenameNeedsAName(t *testing.T) {
//		plaittest.Given(orderdesk.Customer(),
//			plait.Emit("created", orderdesk.CustomerCreated{Name: "Ann", Email: "ann@example.com"}),
//		).
//			When("rename", orderdesk.RenameCustomer{Name: "  "}).
//			ThenRejectedWith(t, plaittest.Field("name", "required"))
//	}
//
//	func TestShipAnOrder(t *testing.T) {
//		plaittest.Given(orderdesk.Order(), placed).
//			When("ship", orderdesk.ShipOrder{}).
//			ThenEvents(t, plait.Emit("shipped", orderdesk.OrderShipped{At: plaittest.FixedTime}))
//	}
//
//	func TestAShippedOrderCannotBeCancelled(t *testing.T) {
//		plaittest.Given(orderdesk.Order(), placed, shipped).
//			When("cancel", orderdesk.CancelOrder{Reason: "too late"}).
//			ThenRejected(t, "invalid_state")
//	}
//
// Every command of a scenario is sent at [FixedTime] by user "tester" to
// instance "test-1" unless [Scenario.At], [Scenario.By] or [Scenario.For]
// say otherwise, so expected events can name the time they carry.
// [Scenario.Expecting] sends it with the version the sender saw.
//
// A reactor is tested the same way, purely: [React] runs it on an event
// made with [Happened], and ThenCommands checks what it sends:
//
//	func TestAPlacedOrderGetsAListItem(t *testing.T) {
//		plaittest.React(orderdesk.OrderListFeed(), plaittest.Happened("order", "o1", 1, "placed", placedData)).
//			ThenCommands(t,
//				plaittest.Sent{Type: "orderList", AggregateID: "o1", Name: "setOrder", Data: setOrderData},
//				plaittest.Sent{Type: "orderList", AggregateID: "o1", Name: "setStatus", Data: setStatusData})
//	}
package plaittest
