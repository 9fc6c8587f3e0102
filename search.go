package plait

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Searchable declares state fields of text that lists search: a filter
// search.F=v keeps the instances whose field F starts with v, compared by
// their [SearchKey]s, so that "ann" finds "Ann" and "zoe" finds "Zoë".
// The store keeps an index of each field's keys, so such a search stays
// fast however many instances the type has.
func Searchable[S any](fields ...string) Option[S] {
	return func(a *Aggregate[S]) { a.settings.Searchable = append(a.settings.Searchable, fields...) }
}

// MaxSearchKey is the most bytes of a SearchKey: a search compares the
// keys of the text and of what is searched for up to it, so that an index
// of keys keeps every entry within what PostgreSQL takes.
const MaxSearchKey = 1024

// SearchKey is the form in which a search compares text: its characters
// decomposed as far as Unicode's compatibility mappings go (NFKD), their
// marks (accents, diacritics) and invisible format characters (a
// zero-width space, a soft hyphen) dropped, its leading spaces too, and
// its case folded, cut to at most MaxSearchKey bytes at a character's
// end. "Zoë", "ZOE" and " zoe" have one key, as have "straße" and
// "STRASSE", "ﬁle" and "FILE".
//
// Both stores index the keys Plait computes, not their own collation's,
// so a search finds the same items in every deployment. The keys are
// stored, so they must not change from one release to the next: Unicode
// keeps the case folding and decompositions of the characters it has
// assigned stable, and TestSearchKey pins keys of many scripts, so that a
// release computing others (of golang.org/x/text, say) fails its tests.
func SearchKey(s string) string {
	if ascii(s) {
		// Most text: its key is its lower case.
		return cut(strings.ToLower(strings.TrimLeftFunc(s, unicode.IsSpace)))
	}
	// Decomposed first, so that what compatibility maps to capitals
	// ("℡" is "TEL") is folded too; decomposed again after folding, which
	// can map a character to one with a mark (U+0130 to "i" and U+0307).
	return cut(cherokeeLower(unmarked(cases.Fold().String(unmarked(s)))))
}

// cherokeeLower is s with its Cherokee letters in lower case, as plait.js
// has them. Unicode folds Cherokee to upper case, for its lower case came
// later; golang.org/x/text swaps the two cases instead, giving "Ꭰ" and
// "ꭰ" keys of their own. Whatever the folding did, they end in lower case.
func cherokeeLower(s string) string {
	if !strings.ContainsFunc(s, cherokee) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if cherokee(r) {
			return unicode.ToLower(r)
		}
		return r
	}, s)
}

func cherokee(r rune) bool { return unicode.Is(unicode.Cherokee, r) }

// ascii reports whether s is all ASCII.
func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// unmarked is s decomposed (NFKD) without its nonspacing marks and format
// characters, and without leading spaces.
func unmarked(s string) string {
	d := norm.NFKD.String(s)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		if !unicode.In(r, unicode.Mn, unicode.Cf) && (b.Len() > 0 || !unicode.IsSpace(r)) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cut is s cut to at most MaxSearchKey bytes, at a character's end.
func cut(s string) string {
	if len(s) <= MaxSearchKey {
		return s
	}
	n := MaxSearchKey
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
