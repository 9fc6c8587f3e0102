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
	} {
		if got := plait.JoinPath(c.parent, c.key); got != c.want {
			t.Errorf("JoinPath(%q, %q) = %q, want %q", c.parent, c.key, got, c.want)
		}
	}
}
