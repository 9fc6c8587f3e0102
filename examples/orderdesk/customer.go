package orderdesk

import (
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"

	"github.com/plaithq/plait"
)

// The commands and events of a customer.
const (
	CmdCreate       = "create"
	CmdRename       = "rename"
	CmdChangeEmail  = "changeEmail"
	EvtCreated      = "created"
	EvtRenamed      = "renamed"
	EvtEmailChanged = "emailChanged"
)

// CustomerState is a customer's document. A customer exists once it has a
// name: every accepted command leaves a non-empty one.
type CustomerState struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// The data of the customer's commands, and of its events: the command's
// data, trimmed.
type (
	CreateCustomer CustomerState
	RenameCustomer struct {
		Name string `json:"name"`
	}
	ChangeEmail struct {
		Email string `json:"email"`
	}
	CustomerCreated CustomerState
	CustomerRenamed RenameCustomer
	EmailChanged    ChangeEmail
)

// Customer is the customer aggregate type, its email address personal data.
func Customer() *plait.Aggregate[CustomerState] { return CustomerWith("email") }

// CustomerWith is the customer aggregate type with the given fields
// personal data: sealed under the customer's key (its id), and erased
// everywhere once the customer is forgotten. A sealed field's list index
// holds sealed values, so lists cannot sort by it, and filter or search
// on it only by reading the list, without an index. A name in the clear is
// searchable: "ann" finds "Ann" and "Anné".
func CustomerWith(personal ...string) *plait.Aggregate[CustomerState] {
	searchable := plait.Searchable[CustomerState]("name")
	if slices.Contains(personal, "name") {
		searchable = plait.Searchable[CustomerState]() // no index can search a sealed name
	}
	return plait.NewAggregate(CustomerType,
		searchable,
		plait.WithAccess[CustomerState](CustomerAccess),
		plait.Handle(CmdCreate, func(s CustomerState, c plait.Cmd[CreateCustomer]) ([]plait.Change, error) {
			if s.Name != "" {
				return nil, plait.Reject("", CodeExists, "this customer exists already")
			}
			var p plait.Problems
			created := CustomerCreated{Name: checkName(&p, c.Data.Name), Email: checkEmail(&p, c.Data.Email)}
			return emitValid(&p, plait.Emit(EvtCreated, created))
		}),
		plait.Handle(CmdRename, func(s CustomerState, c plait.Cmd[RenameCustomer]) ([]plait.Change, error) {
			if s.Name == "" {
				return nil, plait.Reject("", CodeNotFound, "there is no such customer")
			}
			var p plait.Problems
			return emitValid(&p, plait.Emit(EvtRenamed, CustomerRenamed{Name: checkName(&p, c.Data.Name)}))
		}),
		plait.Handle(CmdChangeEmail, func(s CustomerState, c plait.Cmd[ChangeEmail]) ([]plait.Change, error) {
			if s.Name == "" {
				return nil, plait.Reject("", CodeNotFound, "there is no such customer")
			}
			var p plait.Problems
			return emitValid(&p, plait.Emit(EvtEmailChanged, EmailChanged{Email: checkEmail(&p, c.Data.Email)}))
		}),
		plait.Apply(EvtCreated, func(_ CustomerState, e CustomerCreated) CustomerState { return CustomerState(e) }),
		plait.Apply(EvtRenamed, func(s CustomerState, e CustomerRenamed) CustomerState {
			return CustomerState{Name: e.Name, Email: s.Email}
		}),
		plait.Apply(EvtEmailChanged, func(s CustomerState, e EmailChanged) CustomerState {
			return CustomerState{Name: s.Name, Email: e.Email}
		}),
		plait.Personal[CustomerState](plait.SubjectIsID, personal...),
		plait.Indexed[CustomerState]("name", "email"),
		plait.Schema[CustomerState](CmdCreate, CreateCustomerSchema),
		plait.Schema[CustomerState](CmdRename, RenameCustomerSchema),
		plait.Schema[CustomerState](CmdChangeEmail, ChangeEmailSchema),
	)
}

// checkName returns the name trimmed, annotating p if it is empty or too long.
func checkName(p *plait.Problems, name string) string {
	// Spaces and invisible format characters (a zero-width space, say)
	// around a name are not part of it; control characters never are.
	name = strings.TrimFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) })
	addIf(p, name == "", "name", plait.CodeRequired, "a name is required")
	addIf(p, nameLength(name) > 100, "name", CodeTooLong, "a name has at most 100 characters")
	addIf(p, strings.ContainsFunc(name, isLineBreak), "name", plait.CodeInvalid, "a name has no control characters, such as line breaks")
	return name
}

// nameLength counts the characters of a name as its composed form (NFC)
// has them: an accented letter typed as a letter and a combining accent (as
// some keyboards and systems send it) is one character, as it is when typed
// composed. The name is kept as it was sent.
func nameLength(name string) int {
	if norm.NFC.IsNormalString(name) {
		return utf8.RuneCountInString(name)
	}
	return utf8.RuneCountInString(norm.NFC.String(name))
}

// isLineBreak reports whether r is a control character (a line feed, a
// NEL) or one of Unicode's separators of lines and paragraphs (U+2028,
// U+2029), which break a line as a line feed does.
func isLineBreak(r rune) bool { return unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp) }

// The longest email address, in bytes, and its parts: an address goes
// into SMTP's path of 256 bytes with its angle brackets, and its domain is
// a DNS name.
const (
	maxEmail      = 254
	maxEmailLocal = 64
)

// checkEmail returns the address trimmed, annotating p unless it is a bare
// address such as ann@example.com: no display name, no angle brackets, no
// quoted local part, at most maxEmail bytes, and a domain that is a DNS
// name of at least two labels (see isDomain).
func checkEmail(p *plait.Problems, email string) string {
	email = strings.TrimSpace(email)
	if email == "" {
		p.Add("email", plait.CodeRequired, "an email address is required")
		return email
	}
	a, err := mail.ParseAddress(email)
	// A display name, brackets or quotes make the parsed address differ.
	ok := err == nil && a.Address == email && len(email) <= maxEmail
	if ok {
		at := strings.LastIndexByte(email, '@')
		local, domain := email[:at], email[at+1:]
		ok = !strings.HasPrefix(local, `"`) && len(local) <= maxEmailLocal && isDomain(domain)
	}
	addIf(p, !ok, "email", plait.CodeInvalid, "not an email address such as ann@example.com")
	return email
}

// domainNames checks domain names as a resolver would look them up
// (IDNA2008 with UTS #46): letters, digits and hyphens once converted to
// ASCII, labels of 1 to 63 bytes and names of at most 253.
var domainNames = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.ValidateLabels(true),
	idna.CheckHyphens(true), idna.StrictDomainName(true), idna.VerifyDNSLength(true))

// isDomain reports whether s is a domain name mail can go to: a valid
// name, internationalised or not, of two or more labels, whose top-level
// label is not all digits (that would be an address, not a name).
func isDomain(s string) bool {
	ascii, err := domainNames.ToASCII(s)
	if err != nil {
		return false
	}
	labels := strings.Split(ascii, ".")
	tld := labels[len(labels)-1]
	return len(labels) >= 2 && tld != "" && strings.Trim(tld, "0123456789") != ""
}

// emitValid returns change, or the rejection if p holds annotations.
func emitValid(p *plait.Problems, change plait.Change) ([]plait.Change, error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	return []plait.Change{change}, nil
}

// addIf annotates path with code and message if bad holds.
func addIf(p *plait.Problems, bad bool, path, code, message string) {
	if bad {
		p.Add(path, code, message)
	}
}
