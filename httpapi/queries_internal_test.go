package httpapi

import (
	"errors"
	"net/url"
	"testing"

	"github.com/plaithq/plait"
)

// A list neither filters nor sorts on a field holding a list or an object:
// the store would compare JSON text, and match or order nothing a user
// means. Such a field is still projected.
func TestListFiltersAndSortsOnlyOnComparableFields(t *testing.T) {
	fields := []string{"address", "lines", "name", "total"}
	kinds := map[string]plait.Kind{
		"address": plait.KindObject, "lines": plait.KindList, "name": plait.KindString, "total": plait.KindNumber,
	}
	for _, q := range []string{"eq.lines=1", "prefix.lines=%5B", "eq.address=x", "sort=lines", "sort=-address"} {
		v, _ := url.ParseQuery(q)
		_, err := parseListQuery(v, plait.Settings{Fields: fields, Kinds: kinds}, nil)
		var pe *paramError
		if !errors.As(err, &pe) || pe.Code != CodeInvalidParam || pe.Message == "" {
			t.Errorf("%s: err = %v, want an invalid parameter", q, err)
		}
	}
	for _, q := range []string{"eq.name=x", "prefix.name=x", "eq.total=3", "sort=-total", "fields=lines,address"} {
		v, _ := url.ParseQuery(q)
		if _, err := parseListQuery(v, plait.Settings{Fields: fields, Kinds: kinds}, nil); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
}
