package orderdesk

// The JSON Schemas of the commands users send (see plait.Schema): the
// shape of each command's data, served at GET /schemas/{type} so that a
// client can check a form before it submits it. The rules a shape cannot
// state (a name that is blank once trimmed, an email address, an order that
// may still move) stay in the decide functions, and so do the lengths of a
// name and an email address: data a schema refuses is answered 400 and never
// becomes a command, while a name or address too long is a rejection (422,
// code too_long or invalid) like any other breach of the customer's rules.
const (
	CreateCustomerSchema = `{
	"type": "object",
	"additionalProperties": false,
	"properties": {
		"name": {"type": "string"},
		"email": {"type": "string"}
	}
}`
	RenameCustomerSchema = `{
	"type": "object",
	"additionalProperties": false,
	"properties": {"name": {"type": "string"}}
}`
	ChangeEmailSchema = `{
	"type": "object",
	"additionalProperties": false,
	"properties": {"email": {"type": "string"}}
}`
	PlaceOrderSchema = `{
	"type": "object",
	"additionalProperties": false,
	"properties": {
		"customerId": {"type": "string"},
		"currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
		"lines": {
			"type": "array",
			"items": {
				"type": "object",
				"additionalProperties": false,
				"properties": {
					"sku": {"type": "string"},
					"qty": {"type": "integer"},
					"price": {"type": "number"}
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
	"properties": {"reason": {"type": "string"}}
}`
)
