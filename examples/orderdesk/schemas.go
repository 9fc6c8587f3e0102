package orderdesk

// The JSON Schemas of the commands users send (see plait.Schema): the
// shape of each command's data, served at GET /schemas/{type} so that a
// client can check a form before it submits it. The rules a shape cannot
// state (a name that is blank once trimmed, an email address, an order that
// may still move) stay in the decide functions, and so do the lengths of a
// name and an email address: data a schema refuses is answered 400 and never
// becomes a command, while a name or address too long is a rejection (422,
// code too_long or invalid) like any other breach of the customer's rules.
// A field given as null is taken as left out, so it is a rejection (422,
// code required) as an absent one is, not a 400.
const (
	CreateCustomerSchema = `{
	"type": "object",
	"additionalProperties": false,
	"properties": {
		"name": {"type": ["string", "null"]},
		"email": {"type": ["string", "null"]}
	}
}`
	RenameCustomerSchema = `{
	"type": "object",
	"additionalProperties": false,
	"properties": {"name": {"type": ["string", "null"]}}
}`
	ChangeEmailSchema = `{
	"type": "object",
	"additionalProperties": false,
	"properties": {"email": {"type": ["string", "null"]}}
}`
	PlaceOrderSchema = `{
	"type": "object",
	"additionalProperties": false,
	"properties": {
		"customerId": {"type": ["string", "null"]},
		"currency": {"type": ["string", "null"], "pattern": "^[A-Z]{3}$"},
		"lines": {
			"type": ["array", "null"],
			"items": {
				"type": ["object", "null"],
				"additionalProperties": false,
				"properties": {
					"sku": {"type": ["string", "null"]},
					"qty": {"type": ["integer", "null"]},
					"price": {"type": ["number", "null"]}
				}
			}
		}
	}
}`
	ShipOrderSchema = `{
	"type": "object",
	"additionalProperties": false
}`
	CancelOrderSchema = `{
	"type": "object",
	"additionalProperties": false,
	"properties": {"reason": {"type": ["string", "null"]}}
}`
)
