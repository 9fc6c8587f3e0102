// Package orderdesk is Plait's demo application: customers place orders, and
// a list of orders shows each with its customer's current name.
//
// The customer and order aggregate types validate commands and record
// events. The orderList view has one item per order; reactors feed it from
// the order events and, through the customerOrders helper view, from the
// customer events, so that renaming a customer updates every item of its
// orders. Every field of an item carries the lineage of the event it came
// from.
package orderdesk

import "github.com/plaithq/plait"

// The aggregate types of the application.
const (
	CustomerType       = "customer"
	OrderType          = "order"
	OrderListType      = "orderList"
	CustomerOrdersType = "customerOrders"
)

// The rejection codes of the application, beside plait.CodeRequired and
// plait.CodeInvalid. Codes about the whole command have an empty path.
const (
	CodeExists       = "exists"        // create or place on an instance that exists
	CodeNotFound     = "not_found"     // any other command on one that does not
	CodeInvalidState = "invalid_state" // ship or cancel an order that is not placed
	CodeTooLong      = "too_long"      // a field's value is longer than allowed
)

// App is the orderdesk application. Every user may send every command;
// each user sees the customers they created, the orders they placed and
// the list items of those orders, and a user with the admin role sees them
// all (see Access). A customer's email address is personal
// data; the name is not, so that the lists can sort by it and search it
// (search.name=ann finds "Ann" and "Anné").
func App() plait.App {
	return app(Customer(), OrderList(plait.Searchable[OrderItem]("customerName")), CustomerOrders())
}

// PrivateApp is orderdesk for a deployment that must be able to forget a
// customer entirely: the name is personal data too, sealed in the log, the
// state and the list items that copy it, and erased everywhere on forget.
// Lists, the customer list and the order list, can then not sort by
// customer name, and filter on it only by reading the list, without an
// index.
func PrivateApp() plait.App {
	return app(CustomerWith("name", "email"),
		OrderList(plait.PersonalCopies[OrderItem]("customerName")),
		CustomerOrders(plait.PersonalCopies[CustomerOrdersState]("name")))
}

// AdminRole is the role of the users who see every instance of every type.
const AdminRole = "admin"

// Who sees what in orderdesk. A server without authentication has one
// local user, who holds AdminRole.
var (
	// CustomerAccess: a customer is its creator's, and AdminRole sees
	// them all. An order may name any customer, but its list item shows
	// the customer's name only when the order's owner is the customer's
	// (see CustomerOrdersState).
	CustomerAccess = plait.Access{OwnerOnly: true, SeeAllRoles: []string{AdminRole}}
	// Access is for orders and their list items: an order is its
	// creator's (a list item, its order's creator's), and AdminRole sees
	// them all.
	Access = plait.Access{OwnerOnly: true, SeeAllRoles: []string{AdminRole}}
	// InternalAccess is for customerOrders, the view that feeds name
	// changes to the list items: it holds every user's order ids, so only
	// AdminRole sees it.
	InternalAccess = plait.Access{RolesOnly: true, SeeAllRoles: []string{AdminRole}}
)

// The names of orderdesk's applications when it runs as two of them.
const (
	CoreName  = "orderdesk_core"
	ListsName = "orderdesk_lists"
)

// Core is the part of orderdesk that decides what customers and orders
// do: the customer and order aggregate types, and no reactor. With Lists
// it is orderdesk as two applications, each deployed and scaled on its
// own: scaled out, each is its own Kafka consumer group, and Lists reacts
// to the events Core publishes (the two share a topic prefix; each type's
// topics belong to the one application that owns the type).
func Core() plait.App {
	return plait.App{
		Name:       CoreName,
		Aggregates: []plait.Definition{Customer(), Order()},
		Upcasters:  []plait.Upcaster{PlacedV1ToV2()},
	}
}

// Lists is the part of orderdesk that keeps the lists: the orderList and
// customerOrders views and the reactors that feed them from the customer
// and order events of Core, which it consumes from Kafka.
func Lists() plait.App {
	return plait.App{
		Name:       ListsName,
		Aggregates: []plait.Definition{OrderList(plait.Searchable[OrderItem]("customerName")), CustomerOrders()},
		Reactors:   []*plait.Reactor{OrderListFeed(), CustomerNameFanout()},
	}
}

func app(customer, orderList, customerOrders plait.Definition) plait.App {
	return plait.App{
		Name:       "orderdesk",
		Aggregates: []plait.Definition{customer, Order(), orderList, customerOrders},
		Reactors:   []*plait.Reactor{OrderListFeed(), CustomerNameFanout()},
		Upcasters:  []plait.Upcaster{PlacedV1ToV2()},
	}
}
