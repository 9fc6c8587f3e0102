package engine

import "testing"

func TestHasNULReadsEscapesAsJSONDoes(t *testing.T) {
	for text, want := range map[string]bool{
		`{"a":"x\u0000y"}`:       true,
		`{"a":"x\\u0000y"}`:      false, // a backslash, then u0000
		`{"a":"x\\\u0000y"}`:     true,  // a backslash, then NUL
		`{"a":"x\\\\u0000y"}`:    false,
		`{"a\u0000":1}`:          true,
		`{"a":"\\u0000","b":""}`: false,
		`{"a":"\\u0000\u0000"}`:  true,
		`{"a":"u0000"}`:          false,
		`{}`:                     false,
	} {
		if got := hasNUL([]byte(text)); got != want {
			t.Errorf("hasNUL(%s) = %v, want %v", text, got, want)
		}
	}
}
