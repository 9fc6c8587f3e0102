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
