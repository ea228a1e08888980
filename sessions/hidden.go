package sessions

import (
	"unicode"
	"unicode/utf8"
)

// hiddenIn reports whether a reason holds a character that does not show as what it
// is: a control character other than tab and line breaks (an escape sequence would
// drive the terminal of whoever reads the audit trail with jq -r), or an invisible
// formatting one (Unicode's Cf: zero-width spaces, bidirectional overrides, the soft
// hyphen, tag characters). Such a character makes a reason read as other text than
// its bytes hold: a bidirectional override shows the reader another order of its
// characters, a zero-width space splits a word that a search of the audit trail looks
// for. The exceptions are those writing needs: the zero-width joiner and non-joiner
// (joining) in Persian and Hindi words, Sinhala's ශ්‍රී and an emoji sequence, and the
// implicit directional marks that Hebrew and Arabic editors put where right-to-left
// text meets a number or Latin text. None of them can hide a card number: the scan
// reads past them (readAs).
func hiddenIn(s string) bool {
	prev := rune(-1) // none yet
	for i, r := range s {
		switch {
		case r == zwj || r == zwnj:
			next, _ := utf8.DecodeRuneInString(s[i+utf8.RuneLen(r):])
			if !joining(prev) || !joining(next) {
				return true
			}
		case r == lrm || r == rlm || r == alm:
			// taken anywhere: one beside a digit is where they are most needed
		case r != '\t' && r != '\n' && r != '\r' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)):
			return true
		}
		prev = r
	}
	return false
}

// The zero-width joiner and non-joiner: whether the characters on either side join,
// form a conjunct or make one emoji.
const (
	zwj  = '\u200d'
	zwnj = '\u200c'
)

// The implicit directional marks: left-to-right, right-to-left and Arabic letter mark.
// Each acts as an invisible letter of its direction would (RLM as a Hebrew one, ALM
// as an Arabic one), so it can show the text in no order that such a letter could
// not; the overrides, embeddings and isolates reorder whole runs of text.
const (
	lrm = '\u200e'
	rlm = '\u200f'
	alm = '\u061c'
)

// joining reports whether r is one a joiner or non-joiner may stand beside: a letter,
// a combining mark (a virama, an emoji's variation selector) or a symbol (an emoji, a
// skin tone) of a script that needs them, not ASCII. Never a digit, a space or the
// text's edge (r < 0, or utf8.RuneError at the end), so that no number is split by
// one unseen.
func joining(r rune) bool {
	return r > unicode.MaxASCII && r != utf8.RuneError && unicode.In(r, unicode.L, unicode.M, unicode.So, unicode.Sk)
}

// PrintableASCII reports whether s holds only printable ASCII characters, space to
// tilde: all an id or a key a caller sends back needs, and nothing that shows as other
// than what it is.
func PrintableASCII(s string) bool {
	for i := range len(s) {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
