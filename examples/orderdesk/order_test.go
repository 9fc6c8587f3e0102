package orderdesk_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/plaittest"
)

var (
	order     = orderdesk.Order()
	twoLines  = []M{{"sku": "TEA", "qty": 2, "price": 4.5}, {"sku": "MUG", "qty": 1, "price": 12}}
	placed    = plait.Emit("placed", M{"customerId": "c1", "lines": twoLines, "total": 21, "currency": "EUR", "placedAt": placedAtFixed})
	shipped   = plait.Emit("shipped", M{"at": plaittest.FixedTime})
	cancelled = plait.Emit("cancelled", M{"reason": "changed my mind", "at": plaittest.FixedTime})
)

func TestPlaceAnOrder(t *testing.T) {
	plaittest.Given(order).
		When("place", M{"customerId": "c1", "lines": twoLines}).
		ThenEvents(t, placed).
		ThenState(t, M{"customerId": "c1", "lines": twoLines, "total": 21, "currency": "EUR", "status": "placed", "placedAt": placedAtFixed})
}

func TestTheTotalIsTheSumOfQtyTimesPrice(t *testing.T) {
	lines := []M{{"sku": "A", "qty": 3, "price": 0.5}, {"sku": "B", "qty": 1, "price": 0}, {"sku": "C", "qty": 10, "price": 2.25}}
	plaittest.Given(order).
		When("place", M{"customerId": "c1", "lines": lines}).
		ThenEvents(t, plait.Emit("placed", M{"customerId": "c1", "lines": lines, "total": 24, "currency": "EUR", "placedAt": placedAtFixed}))
}

func TestTheTotalIsSummedInDecimalAsThePricesWereWritten(t *testing.T) {
	lines := []M{{"sku": "A", "qty": 3, "price": 0.1}, {"sku": "B", "qty": 3, "price": 19.99}}
	plaittest.Given(order).
		When("place", M{"customerId": "c1", "lines": lines}).
		ThenEvents(t, plait.Emit("placed", M{"customerId": "c1", "lines": lines, "total": 60.27, "currency": "EUR", "placedAt": placedAtFixed}))
}

func TestATotalTooLargeForAPriceIsRejected(t *testing.T) {
	for _, lines := range [][]M{
		{{"sku": "A", "qty": 1000000000, "price": 1e300}}, // beyond float64: it would be +Inf
		{{"sku": "A", "qty": 2, "price": 5e14}},
	} {
		plaittest.Given(order).
			When("place", M{"customerId": "c1", "lines": lines}).
			ThenRejectedWith(t, plaittest.Field("lines", "invalid"))
	}
	plaittest.Given(order).
		When("place", M{"customerId": "c1", "lines": []M{{"sku": "A", "qty": 1, "price": 999999999999999}}}).
		ThenEvents(t, plait.Emit("placed", M{"customerId": "c1", "lines": []M{{"sku": "A", "qty": 1, "price": 999999999999999}},
			"total": 999999999999999, "currency": "EUR", "placedAt": placedAtFixed}))
}

func TestPlaceOnAnExistingOrderIsRejected(t *testing.T) {
	plaittest.Given(order, placed).
		When("place", M{"customerId": "c1", "lines": twoLines}).
		ThenRejectedWith(t, plaittest.Field("", "exists"))
}

func TestAnOrderHasAtLeastOneLine(t *testing.T) {
	plaittest.Given(order).
		When("place", M{"customerId": "c1", "lines": []M{}}).
		ThenRejectedWith(t, plaittest.Field("lines", "required"))
	plaittest.Given(order).
		When("place", M{"customerId": "c1"}).
		ThenRejectedWith(t, plaittest.Field("lines", "required"))
}

func TestAnOrderNeedsACustomer(t *testing.T) {
	plaittest.Given(order).
		When("place", M{"customerId": " ", "lines": twoLines}).
		ThenRejectedWith(t, plaittest.Field("customerId", "required"))
}

// An order names its customer by an id a customer can have: one that no
// customer can have would leave a list item whose customer never opens.
func TestAnOrderNamesACustomerByAnID(t *testing.T) {
	for _, id := range []string{"bad id/ü", "-c1", strings.Repeat("c", 129)} {
		plaittest.Given(order).
			When("place", M{"customerId": id, "lines": twoLines}).
			ThenRejectedWith(t, plaittest.Field("customerId", "invalid"))
	}
}

func TestAnArticleIsStoredTrimmed(t *testing.T) {
	plaittest.Given(order).
		When("place", M{"customerId": "c1", "lines": []M{{"sku": " TEA ", "qty": 2, "price": 1.5}}}).
		ThenEvents(t, plait.Emit("placed", M{"customerId": "c1", "lines": []M{{"sku": "TEA", "qty": 2, "price": 1.5}}, "total": 3, "currency": "EUR", "placedAt": placedAtFixed}))
}

func TestEachLineHasASkuAQtyOfAtLeastOneAndAPriceOfAtLeastZero(t *testing.T) {
	plaittest.Given(order).
		When("place", M{"customerId": "c1", "lines": []M{
			{"sku": "TEA", "qty": 1, "price": 0},
			{"sku": "TEA", "qty": 0, "price": 1},
			{"sku": "TEA", "qty": -2, "price": -0.01},
			{"sku": "", "qty": 1, "price": 1},
			{"sku": "TEA", "qty": 1},
			{"sku": "TEA", "price": 1},
		}}).
		ThenRejectedWith(t,
			plaittest.Field("lines[1].qty", "invalid"),
			plaittest.Field("lines[2].qty", "invalid"),
			plaittest.Field("lines[2].price", "invalid"),
			plaittest.Field("lines[3].sku", "required"),
			plaittest.Field("lines[4].price", "required"),
			plaittest.Field("lines[5].qty", "required"),
		)
}

func TestShipAPlacedOrder(t *testing.T) {
	plaittest.Given(order, placed).
		When("ship", M{}).
		ThenEvents(t, shipped).
		ThenState(t, M{"customerId": "c1", "lines": twoLines, "total": 21, "currency": "EUR", "status": "shipped", "placedAt": placedAtFixed})
}

func TestCancelAPlacedOrder(t *testing.T) {
	plaittest.Given(order, placed).
		When("cancel", M{"reason": "changed my mind"}).
		ThenEvents(t, cancelled).
		ThenState(t, M{"customerId": "c1", "lines": twoLines, "total": 21, "currency": "EUR", "status": "cancelled", "placedAt": placedAtFixed})
}

func TestAShippedOrCancelledOrderStaysSo(t *testing.T) {
	plaittest.Given(order, placed, cancelled).When("ship", M{}).ThenRejectedWith(t, plaittest.Field("", "invalid_state"))
	plaittest.Given(order, placed, shipped).When("cancel", M{"reason": "late"}).ThenRejectedWith(t, plaittest.Field("", "invalid_state"))
	plaittest.Given(order, placed, shipped).When("ship", M{}).ThenRejectedWith(t, plaittest.Field("", "invalid_state"))
	plaittest.Given(order, placed, cancelled).When("cancel", M{}).ThenRejectedWith(t, plaittest.Field("", "invalid_state"))
}

func TestShipOrCancelAMissingOrderIsRejected(t *testing.T) {
	plaittest.Given(order).When("ship", M{}).ThenRejectedWith(t, plaittest.Field("", "not_found"))
	plaittest.Given(order).When("cancel", M{"reason": "x"}).ThenRejectedWith(t, plaittest.Field("", "not_found"))
}

func TestOrderEventsCarryTheCommandsTime(t *testing.T) {
	at := plaittest.FixedTime.Add(90 * time.Minute)
	plaittest.Given(order, placed).At(at).
		When("ship", M{}).
		ThenEvents(t, plait.Emit("shipped", M{"at": at}))
}

// TestAWholeQtyWrittenWithAFractionIsThatQty: the schema counts 2.0 as an
// integer, and so does the order.
func TestAWholeQtyWrittenWithAFractionIsThatQty(t *testing.T) {
	plaittest.Given(order).
		When("place", json.RawMessage(`{"customerId":"c1","lines":[{"sku":"TEA","qty":2.0,"price":4.5},{"sku":"MUG","qty":1e0,"price":12}]}`)).
		ThenEvents(t, placed)
}

func TestOrderDataThatDoesNotDecodeIsNoCommand(t *testing.T) {
	plaittest.Given(order).
		When("place", M{"customerId": "c1", "lines": []M{{"sku": "TEA", "qty": 1.5, "price": 1}}}).
		ThenError(t, plait.ErrBadPayload)
}

func TestAPriceOfMinusZeroIsZero(t *testing.T) {
	lines := []M{{"sku": "A", "qty": 1, "price": math.Copysign(0, -1)}}
	r := plaittest.Given(order).When("place", M{"customerId": "c1", "lines": lines})
	if strings.Contains(string(r.State()), `"price":-0`) {
		t.Fatalf("the order keeps a negative zero: %s", r.State())
	}
	for _, c := range r.Changes() {
		if b, err := json.Marshal(c); err != nil || strings.Contains(string(b), `"price":-0`) {
			t.Fatalf("the event keeps a negative zero: %s (%v)", b, err)
		}
	}
}

// A field given as null is one left out: a rejection saying it is
// required, as for an absent one, not data the schema refuses.
func TestAFieldGivenAsNullIsLeftOut(t *testing.T) {
	plaittest.Given(order).
		When("place", M{"customerId": nil, "lines": []any{M{"sku": nil, "qty": nil, "price": nil}, nil}}).
		ThenRejectedWith(t,
			plaittest.Field("customerId", "required"),
			plaittest.Field("lines[0].sku", "required"),
			plaittest.Field("lines[0].qty", "required"),
			plaittest.Field("lines[0].price", "required"),
			plaittest.Field("lines[1].sku", "required"),
			plaittest.Field("lines[1].qty", "required"),
			plaittest.Field("lines[1].price", "required"),
		)
	plaittest.Given(customer).
		When("create", M{"name": nil, "email": nil}).
		ThenRejectedWith(t, plaittest.Field("name", "required"), plaittest.Field("email", "required"))
}

// placedAtFixed is plaittest.FixedTime as orderdesk writes a placedAt.
var placedAtFixed = plait.Time{Time: plaittest.FixedTime}
