package plait_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/plaithq/plait"
)

type kindsBase struct {
	Owner string `json:"owner"`
}

type kindsState struct {
	kindsBase
	Name    string          `json:"name"`
	Count   int             `json:"count"`
	Price   *float64        `json:"price"`
	Open    bool            `json:"open"`
	At      time.Time       `json:"at"`
	Tags    []string        `json:"tags"`
	Pair    [2]int          `json:"pair"`
	Blob    []byte          `json:"blob"`
	Address struct{}        `json:"address"`
	Meta    map[string]int  `json:"meta"`
	Any     any             `json:"any"`
	Extra   json.RawMessage `json:"extra"`
	Quoted  int64           `json:"quoted,string"`
	Skipped int             `json:"-"`
	hidden  int
}

// Each state field has the kind of JSON value it holds, for the lists'
// filters to fit.
func TestStateFieldsHaveKinds(t *testing.T) {
	s := plait.NewAggregate[kindsState]("thing").Settings()
	want := map[string]plait.Kind{
		"owner": plait.KindString, "name": plait.KindString, "count": plait.KindNumber, "price": plait.KindNumber,
		"open": plait.KindBool, "at": plait.KindString, "tags": plait.KindList, "extra": plait.KindOther, "quoted": plait.KindString,
		"pair": plait.KindList, "blob": plait.KindString, "address": plait.KindObject, "meta": plait.KindObject, "any": plait.KindOther,
	}
	if !reflect.DeepEqual(s.Kinds, want) {
		t.Errorf("kinds %v, want %v", s.Kinds, want)
	}
	if want := []string{"address", "any", "at", "blob", "count", "extra", "meta", "name", "open", "owner", "pair", "price", "quoted", "tags"}; !reflect.DeepEqual(s.Fields, want) {
		t.Errorf("fields %v, want %v", s.Fields, want)
	}
	_ = kindsState{}.hidden
}
