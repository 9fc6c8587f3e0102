package plait_test

import (
	"testing"

	"github.com/plaithq/plait"
)

// TestAccessSeesWhatItDeclares checks each kind of access against an
// owner, another user, a user with a see-all role and an instance without
// owner.
func TestAccessSeesWhatItDeclares(t *testing.T) {
	ann, bob := plait.User{ID: "ann"}, plait.User{ID: "bob"}
	admin := plait.User{ID: "root", Roles: []string{"admin"}}
	type sight struct{ ownerSees, otherSees, adminSees, noOwnerSees, otherSeesAll bool }
	for _, c := range []struct {
		name   string
		access plait.Access
		want   sight
	}{
		{"open", plait.Access{}, sight{true, true, true, true, true}},
		{"owner only", plait.Access{OwnerOnly: true, SeeAllRoles: []string{"admin"}}, sight{true, false, true, true, false}},
		{"roles only", plait.Access{RolesOnly: true, SeeAllRoles: []string{"admin"}}, sight{false, false, true, false, false}},
		// Owned by no one yet, an instance whose owner is a field is
		// seen by the roles that see all only.
		{"owner field", plait.Access{OwnerOnly: true, OwnerField: "assignee", SeeAllRoles: []string{"admin"}}, sight{true, false, true, false, false}},
	} {
		got := sight{
			ownerSees:    c.access.MaySee(ann, "ann"),
			otherSees:    c.access.MaySee(bob, "ann"),
			adminSees:    c.access.MaySee(admin, "ann") && c.access.SeesAll(admin),
			noOwnerSees:  c.access.MaySee(bob, ""),
			otherSeesAll: c.access.SeesAll(bob),
		}
		if got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestByOwnerIsWhereUsersSeeTheirOwn: of the kinds of access, only
// OwnerOnly lets a user who does not see all see their own instances.
func TestByOwnerIsWhereUsersSeeTheirOwn(t *testing.T) {
	for access, want := range map[*plait.Access]bool{
		{}:                                 false,
		{OwnerOnly: true}:                  true,
		{RolesOnly: true}:                  false,
		{OwnerOnly: true, RolesOnly: true}: false,
	} {
		if got := access.ByOwner(); got != want {
			t.Errorf("%+v.ByOwner() = %v, want %v", *access, got, want)
		}
	}
}

// TestOwnerIsTheOwnerFieldsValue: with an OwnerField, the owner is the
// field's text, "" when it holds none; without one, the owner given.
func TestOwnerIsTheOwnerFieldsValue(t *testing.T) {
	field := plait.Access{OwnerOnly: true, OwnerField: "assignee"}
	for state, want := range map[string]string{
		`{"assignee":"bob","x":1}`: "bob",
		`{"assignee":""}`:          "",
		`{"assignee":null}`:        "",
		`{"assignee":7}`:           "",
		`{"other":"bob"}`:          "",
		`[1]`:                      "",
		``:                         "",
	} {
		if got := field.Owner([]byte(state), "ann"); got != want {
			t.Errorf("Owner(%s) = %q, want %q", state, got, want)
		}
	}
	if got := (plait.Access{OwnerOnly: true}).Owner([]byte(`{"assignee":"bob"}`), "ann"); got != "ann" {
		t.Errorf("without an owner field, Owner = %q, want the owner given", got)
	}
}
