package plait

import (
	"fmt"
	"time"
)

// TimeLayout is how a [Time] is written: RFC 3339 in UTC with all nine
// fractional digits, so that every time is written with the same number of
// characters and their texts sort as the times do.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// Time is a time.Time for a state field that lists sort or filter by.
// Lists compare values as text, and time.Time writes RFC 3339 with its
// trailing fractional zeros dropped ("…05.1Z" for "…05.100Z"), whose texts
// do not sort as the times do ("…05Z" after "…05.1Z"). Time writes
// [TimeLayout] in UTC instead, and reads any RFC 3339 time.
type Time struct{ time.Time }

// MarshalJSON writes the time in [TimeLayout].
func (t Time) MarshalJSON() ([]byte, error) {
	b, err := t.MarshalText()
	if err != nil {
		return nil, err
	}
	return append(append([]byte{'"'}, b...), '"'), nil
}

// MarshalText writes the time in [TimeLayout].
func (t Time) MarshalText() ([]byte, error) {
	u := t.UTC()
	if y := u.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("plait: time %v: the year is outside 0–9999", t.Time)
	}
	return u.AppendFormat(make([]byte, 0, len(TimeLayout)), TimeLayout), nil
}

// UnmarshalJSON reads an RFC 3339 time, JSON null as the zero time.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = Time{}
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("plait: a time is an RFC 3339 string, not %s", b)
	}
	return t.UnmarshalText(b[1 : len(b)-1])
}

// UnmarshalText reads an RFC 3339 time.
func (t *Time) UnmarshalText(b []byte) error {
	v, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return fmt.Errorf("plait: %w", err)
	}
	t.Time = v
	return nil
}
