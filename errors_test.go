package plait_test

import (
	"testing"

	"github.com/plaithq/plait"
)

func TestJoinPathWritesEveryKeyApart(t *testing.T) {
	for _, c := range []struct{ parent, key, want string }{
		{"", "name", "name"},
		{"lines[0]", "qty", "lines[0].qty"},
		{"", "", `[""]`},
		{"lines[0]", "", `lines[0][""]`},
		{`[""]`, "a", `[""].a`},
		{"", "a.b", `["a.b"]`},
		{"x", "a.b", `x["a.b"]`},
		{"", "a[0]", `["a[0]"]`},
		{"", `say "hi"`, `["say \"hi\""]`},
		{"", `back\slash`, `["back\\slash"]`},
		{"", "<tag>&", "<tag>&"},
		{"", "customer-id", "customer-id"},
	} {
		if got := plait.JoinPath(c.parent, c.key); got != c.want {
			t.Errorf("JoinPath(%q, %q) = %q, want %q", c.parent, c.key, got, c.want)
		}
	}
}
