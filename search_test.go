package plait_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/plaithq/plait"
)

func TestSearchKey(t *testing.T) {
	for in, want := range map[string]string{
		"Ann Smith":       "ann smith",
		"ZOË":             "zoe",
		"zoe\u0308":       "zoe", // decomposed
		"Straße":          "strasse",
		"ﬁle":             "file", // a ligature, by compatibility
		"℡ 12":            "tel 12",
		"İstanbul":        "istanbul",
		"Ångström":        "angstrom",
		"ΣΊΣΥΦΟΣ":         "σισυφοσ",
		"Łódź":            "łodz", // a stroke is no mark
		"Işık":            "isık", // the dotless ı is a letter of its own
		"οδος":            "οδοσ", // a final sigma is a sigma
		"  Ann ":          "ann ", // leading spaces go, not trailing: "ann " starts no "Anna"
		"\u200bZo\u00ade": "zoe",  // invisible format characters go
		"\u3000Zoë":       "zoe",  // an ideographic space leads
		// The keys of many scripts, pinned: a release whose keys
		// differ (a new golang.org/x/text, say) must not ship, for
		// stores hold the keys of their texts.
		"ПРИВЕТ Ёлка":   "привет елка",
		"ԱՐԱՄ":          "արամ",
		"ᲒᲘᲝᲠᲒᲘ":        "გიორგი",
		"ᎠᎡᎢ ꭰꭱꭲ":       "ꭰꭱꭲ ꭰꭱꭲ", // Cherokee, in lower case whatever the case
		"𐐀𐐁":            "𐐨𐐩",
		"ＡＢＣ１２３":        "abc123",
		"한국":            "\u1112\u1161\u11ab\u1100\u116e\u11a8",
		"Ǆemal ǅ ǆ":     "dzemal dz dz",
		"Ωmega ΐ":       "ωmega ι",
		"ŉ ﬀ ﬃ":         "ʼn ff ffi",
		"𞤀𞤁":            "𞤢𞤣",
		"Ⅻ ①":           "xii 1",
		"":              "",
		"2024-01-02T03": "2024-01-02t03",
	} {
		if got := plait.SearchKey(in); got != want {
			t.Errorf("SearchKey(%q) = %q, want %q", in, got, want)
		}
	}
	// The key of a prefix is a prefix of the key.
	for _, s := range []string{"Zoë Ångström", "Straße 12", "ANNE-Marie"} {
		for i := range s {
			if k, p := plait.SearchKey(s), plait.SearchKey(s[:i]); utf8.ValidString(s[:i]) && !strings.HasPrefix(k, p) {
				t.Errorf("SearchKey(%q) = %q does not start with SearchKey(%q) = %q", s, k, s[:i], p)
			}
		}
	}
	// A key is cut at a character's end.
	long := strings.Repeat("é", plait.MaxSearchKey)
	if k := plait.SearchKey(long); len(k) > plait.MaxSearchKey || !utf8.ValidString(k) {
		t.Errorf("the key of %d bytes has %d bytes (valid %v)", len(long), len(k), utf8.ValidString(k))
	}
	if k := plait.SearchKey(strings.Repeat("ǅ", plait.MaxSearchKey)); len(k) > plait.MaxSearchKey || !utf8.ValidString(k) {
		t.Errorf("a long key has %d bytes (valid %v)", len(k), utf8.ValidString(k))
	}
}

func BenchmarkSearchKey(b *testing.B) {
	for _, s := range []string{"Ann Smith", "Zoë Ångström"} {
		b.Run(s, func(b *testing.B) {
			for b.Loop() {
				plait.SearchKey(s)
			}
		})
	}
}
