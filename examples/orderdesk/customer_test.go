package orderdesk_test

import (
	"strings"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/plaittest"
)

// M is a JSON object, to write commands and events as they travel.
type M = map[string]any

var (
	customer = orderdesk.Customer()
	created  = plait.Emit("created", M{"name": "Ann Lee", "email": "ann@example.com"})
)

func TestCreateACustomer(t *testing.T) {
	plaittest.Given(customer).
		When("create", M{"name": "Ann Lee", "email": "ann@example.com"}).
		ThenEvents(t, created).
		ThenState(t, M{"name": "Ann Lee", "email": "ann@example.com"})
}

func TestCreateTrimsNameAndEmail(t *testing.T) {
	plaittest.Given(customer).
		When("create", M{"name": "  Ann Lee ", "email": " ann@example.com\t"}).
		ThenEvents(t, created)
}

func TestCreateOnAnExistingCustomerIsRejected(t *testing.T) {
	plaittest.Given(customer, created).
		When("create", M{"name": "Bob", "email": "bob@example.com"}).
		ThenRejectedWith(t, plaittest.Field("", "exists"))
}

func TestANameHasOneToAHundredCharacters(t *testing.T) {
	// Characters are counted composed (NFC): an e and a combining acute
	// accent are one character, é, as they are on the screen.
	for _, name := range []string{"A", strings.Repeat("é", 100), strings.Repeat("x", 100), strings.Repeat("e\u0301", 100)} {
		plaittest.Given(customer).
			When("create", M{"name": name, "email": "ann@example.com"}).
			ThenEvents(t, plait.Emit("created", M{"name": name, "email": "ann@example.com"}))
	}
	// Invisible characters around a name are trimmed, as spaces are.
	plaittest.Given(customer).
		When("create", M{"name": "\u200bAnn\ufeff ", "email": "ann@example.com"}).
		ThenEvents(t, plait.Emit("created", M{"name": "Ann", "email": "ann@example.com"}))
	for name, code := range map[string]string{
		"":                             "required",
		"   \t":                        "required",
		strings.Repeat("é", 101):       "too_long",
		strings.Repeat("e\u0301", 101): "too_long",
		strings.Repeat("x", 101):       "too_long",
		" " + strings.Repeat("x", 101): "too_long",
		"\u200b\u200b":                 "required", // zero-width spaces only
		"Ann\nSmith":                   "invalid",
		"Ann\u2028Smith":               "invalid", // a line separator
		"Ann\u2029Smith":               "invalid", // a paragraph separator
		"Ann\x00":                      "invalid",
	} {
		plaittest.Given(customer).
			When("create", M{"name": name, "email": "ann@example.com"}).
			ThenRejectedWith(t, plaittest.Field("name", code))
		plaittest.Given(customer, created).
			When("rename", M{"name": name}).
			ThenRejectedWith(t, plaittest.Field("name", code))
	}
}

func TestAnEmailIsABareValidAddress(t *testing.T) {
	for email, code := range map[string]string{
		"":                                       "required",
		"  ":                                     "required",
		"ann":                                    "invalid",
		"ann@":                                   "invalid",
		"@example.com":                           "invalid",
		"ann@@example.com":                       "invalid",
		"Ann <ann@example.com>":                  "invalid",
		"<ann@example.com>":                      "invalid",
		"ann@example.com, bob@example.com":       "invalid",
		strings.Repeat("a", 65) + "@example.com": "invalid", // a local part over 64 bytes
		"a@" + strings.Repeat("b", 64) + ".com":  "invalid", // a label over 63 bytes
		strings.Repeat("a", 64) + "@" + strings.Repeat(label63+".", 2) + strings.Repeat("c", 62): "invalid", // 255 bytes
		"ann@localhost":     "invalid",
		"ann@-example.com":  "invalid",
		"ann@example-.com":  "invalid",
		"ann@exa_mple.com":  "invalid",
		"ann@example..com":  "invalid",
		"ann@example.com.":  "invalid",
		"ann@[192.0.2.1]":   "invalid",
		`"ann"@example.com`: "invalid",
		"ann@exa mple.com":  "invalid",
	} {
		plaittest.Given(customer).
			When("create", M{"name": "Ann", "email": email}).
			ThenRejectedWith(t, plaittest.Field("email", code))
		plaittest.Given(customer, created).
			When("changeEmail", M{"email": email}).
			ThenRejectedWith(t, plaittest.Field("email", code))
	}
}

// label63 is a DNS label of the longest length.
var label63 = strings.Repeat("b", 63)

func TestTheLongestEmailsAreValid(t *testing.T) {
	for _, email := range []string{
		strings.Repeat("a", 64) + "@" + strings.Repeat(label63+".", 2) + strings.Repeat("c", 61), // 254 bytes
		"ann.o'hara+orders@mail.example.co.uk",
		"ann@xn--bcher-kva.example",
		"ann@bücher.example",
		"ann@उदाहरण.भारत",
		"ann@Example.COM",
		"a@b.c",
	} {
		plaittest.Given(customer).
			When("create", M{"name": "Ann", "email": email}).
			ThenEvents(t, plait.Emit("created", M{"name": "Ann", "email": email}))
	}
}

// TestANameOrEmailTooLongIsARejection: however long a name or an email
// address (within the data limits), breaking the customer's rules is a
// rejection with its annotation, never data the command's schema refuses
// before it is stored.
func TestANameOrEmailTooLongIsARejection(t *testing.T) {
	l := startLive(t)
	long := strings.Repeat("x", 5000)
	l.send("customer", "c1", "create", M{"name": "Ann", "email": "ann@example.com"})
	for _, c := range []struct {
		id, name string
		data     M
		path     string
		code     string
	}{
		{"c2", "create", M{"name": long, "email": "bob@example.com"}, "name", "too_long"},
		{"c2", "create", M{"name": "Bob", "email": long + "@example.com"}, "email", "invalid"},
		{"c1", "rename", M{"name": long}, "name", "too_long"},
		{"c1", "changeEmail", M{"email": "ann@" + long + ".com"}, "email", "invalid"},
	} {
		o := l.send("customer", c.id, c.name, c.data)
		if o.Status != plait.StatusRejected || len(o.Errors) != 1 || o.Errors[0].Path != c.path || o.Errors[0].Code != c.code {
			t.Errorf("%s %s: %s %+v, want rejected at %s with %s", c.id, c.name, o.Status, o.Errors, c.path, c.code)
		}
	}
}

func TestCreateReportsEveryBadField(t *testing.T) {
	plaittest.Given(customer).
		When("create", M{"name": "", "email": "nope"}).
		ThenRejectedWith(t, plaittest.Field("name", "required"), plaittest.Field("email", "invalid"))
}

func TestRenameACustomer(t *testing.T) {
	plaittest.Given(customer, created).
		When("rename", M{"name": "Ann Smith"}).
		ThenEvents(t, plait.Emit("renamed", M{"name": "Ann Smith"})).
		ThenState(t, M{"name": "Ann Smith", "email": "ann@example.com"})
}

func TestChangeACustomersEmail(t *testing.T) {
	plaittest.Given(customer, created).
		When("changeEmail", M{"email": "ann@lee.example"}).
		ThenEvents(t, plait.Emit("emailChanged", M{"email": "ann@lee.example"})).
		ThenState(t, M{"name": "Ann Lee", "email": "ann@lee.example"})
}

func TestCommandsOnAMissingCustomerAreRejected(t *testing.T) {
	plaittest.Given(customer).
		When("rename", M{"name": "Ann"}).
		ThenRejectedWith(t, plaittest.Field("", "not_found"))
	plaittest.Given(customer).
		When("changeEmail", M{"email": "ann@example.com"}).
		ThenRejectedWith(t, plaittest.Field("", "not_found"))
}

func TestCustomerDataThatDoesNotDecodeIsNoCommand(t *testing.T) {
	plaittest.Given(customer).
		When("create", M{"name": "Ann", "email": "ann@example.com", "age": 3}).
		ThenError(t, plait.ErrBadPayload)
	plaittest.Given(customer).
		When("delete", M{}).
		ThenError(t, plait.ErrUnknownCommand)
}
