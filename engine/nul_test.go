package engine

import "testing"

func TestUnstorableReadsEscapesAsJSONDoes(t *testing.T) {
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
		// UTF-16 surrogates: a pair is one character, a lone one none.
		`{"a":"\ud83d\ude00"}`:       false,
		`{"a":"\uD83D\uDE00"}`:       false,
		`{"a":"\ud83d"}`:             true,
		`{"a":"\ud83dx"}`:            true,
		`{"a":"\ud83d\u0041"}`:       true,
		`{"a":"\ude00"}`:             true,
		`{"a":"\ude00\ud83d"}`:       true,
		`{"a":"\\ud83d"}`:            false, // a backslash, then ud83d
		`{"a":"\ud7ff\ue000"}`:       false, // either side of the surrogates
		`{"a":"\ud83d\ude00\ud83d"}`: true,
		"{\"a\":\"\xff\"}":           true, // not UTF-8
		`{"a":"é😀"}`:                 false,
	} {
		if got := unstorable([]byte(text)) != ""; got != want {
			t.Errorf("unstorable(%s) = %v, want %v", text, got, want)
		}
	}
}
