package plait_test

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/plaithq/plait"
)

// Written times sort as text as they do as times, whatever their fractions,
// and read back as the same instant; time.Time's own form does not sort so.
func TestTimesSortAsTheirTexts(t *testing.T) {
	base := time.Date(2026, 11, 24, 10, 26, 43, 0, time.UTC)
	times := []time.Time{base, base.Add(100 * time.Millisecond), base.Add(56600 * time.Microsecond), base.Add(56680 * time.Microsecond)}
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		times = append(times, base.Add(time.Duration(r.Int64N(int64(48*time.Hour)))).In(time.FixedZone("", 3600*(r.IntN(25)-12))))
	}
	text := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	unsorted := false
	for i, a := range times {
		for _, b := range times[:i] {
			ta, tb := text(plait.Time{Time: a}), text(plait.Time{Time: b})
			if (ta < tb) != a.Before(b) || (ta == tb) != a.Equal(b) {
				t.Fatalf("%v and %v are written %s and %s", a, b, ta, tb)
			}
			if ua, ub := text(a.UTC()), text(b.UTC()); (ua < ub) != a.Before(b) {
				unsorted = true
			}
		}
		var back plait.Time
		if err := json.Unmarshal([]byte(text(plait.Time{Time: a})), &back); err != nil || !back.Equal(a) {
			t.Fatalf("%v read back as %v (%v)", a, back.Time, err)
		}
	}
	if !unsorted {
		t.Error("time.Time's texts sorted as the times too: the test shows nothing")
	}
}

// A time written by time.Time (fraction trimmed, any offset) reads as a
// Time; what is no time is an error; the zero Time is left out by omitzero.
func TestTimeReadsRFC3339(t *testing.T) {
	var v struct {
		At plait.Time `json:"at,omitzero"`
	}
	if err := json.Unmarshal([]byte(`{"at":"2026-11-24T11:26:43.0566+01:00"}`), &v); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 24, 10, 26, 43, 56600000, time.UTC); !v.At.Equal(want) {
		t.Fatalf("read %v, want %v", v.At.Time, want)
	}
	b, _ := json.Marshal(v)
	if string(b) != `{"at":"2026-11-24T10:26:43.056600000Z"}` {
		t.Fatalf("written %s", b)
	}
	for _, bad := range []string{`{"at":"yesterday"}`, `{"at":5}`, `{"at":"2026-11-24"}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%s read as %v", bad, v.At.Time)
		}
	}
	if b, _ := json.Marshal(struct {
		At plait.Time `json:"at,omitzero"`
	}{}); strings.Contains(string(b), "at") {
		t.Errorf("the zero time written: %s", b)
	}
	if _, err := json.Marshal(plait.Time{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Error("a year past 9999 written")
	}
}
