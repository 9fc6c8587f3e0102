package orderdesk

// The JSON Schemas of the commands users send (see plait.Schema): the
// shape of each command's data, served at GET /schemas/{type} so that a
// client can check a form before it submits it. The rules a shape cannot
// state (a name that is blank once trimmed, an email address, an order that
// may still move) stay in the decide functions.
const (
	CreateCustomerSchema = `{
	"type": "object",
	"additionalProperties": false,
	"properties": {
		"name": {"type": "string", "maxLength": 200},
		"email": {"type": "string", "maxLength": 320}
	}
}`
	RenameCustomerSchema = `{
	"type": "object",
	"additionalProperties": false,
	"properties": {"name": {"type": "string", "maxLength": 200}}
}`
	ChangeEmailSchema = `{
	"type": "object",
	"additionalProperties": false,
	"properties": {"email": {"type": "string", "maxLength": 320}}
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
)
