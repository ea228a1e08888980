package sessions

import (
	"strings"
	"unicode"

	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"
)

// holdsCardNumber reports whether s holds what looks like a payment card number: 13 to
// 19 digits that pass the Luhn check, written alone, in groups or digit by digit,
// separated by spaces, tabs, dashes or line breaks (a CRM's multi-line note;
// separator), also when more digits follow in the same way ("4111 1111 1111 1111
// 12/29"). A reason goes to Redis and into the audit trail, where a PCI environment
// must never store one. Digits, spaces and dashes are read in their compatibility form
// (NFKC), so that the full-width ones of a Japanese or Chinese input method, or a
// no-break space, do not hide a number; then as readAs reads them, and without the ids
// it holds (withoutIDs).
func holdsCardNumber(s string) bool {
	s = withoutIDs(strings.Map(readAs, norm.NFKC.String(s)))
	var chunks []string // the digit runs of one group, each followed by a separator
	start := -1         // where the current digit run began
	for i := 0; i <= len(s); i++ {
		if i < len(s) && isDigit(s[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start < 0 {
			continue
		}
		chunks = append(chunks, s[start:i])
		start = -1
		if n := separator(s[i:]); n > 0 && i+n < len(s) && isDigit(s[i+n]) {
			i += n - 1
			continue // the group goes on after the separator
		}
		if cardNumberIn(chunks) {
			return true
		}
		chunks = chunks[:0]
	}
	return false
}

// A card number written in groups has groups of minGroup to maxGroup digits: 4-4-4-4,
// 4-6-5 (American Express), 4-6-4 (Diners Club), 4-4-4-4-3 (19 digits).
const (
	minGroup = 3
	maxGroup = 6
)

// cardNumberIn reports whether consecutive chunks of one group join into a card number.
// Only chunks that could be a card number's groups join: the two-digit parts of dates
// and times could not ("leave 2026-12-04 - 2026-12-11" was one for Luhn's check once in
// seven date ranges when they joined), nor the seven-digit ones of an Amazon order
// number ("112-3456789-0123456", one in five). Single digits join each other: a card
// number read out digit by digit, as a speech-to-text transcript writes it ("4 1 1 1
// …"). A chunk alone is one when it is.
func cardNumberIn(chunks []string) bool {
	for i := range chunks {
		var digits strings.Builder
		for j, c := range chunks[i:] {
			if j > 0 && !joins(chunks[i], c) {
				break
			}
			if digits.WriteString(c); digits.Len() > 19 {
				break
			}
			if digits.Len() >= 13 && luhn(digits.String()) {
				return true
			}
		}
	}
	return false
}

// cardGroup reports whether chunk could be a group of a card number written in groups.
func cardGroup(chunk string) bool { return minGroup <= len(chunk) && len(chunk) <= maxGroup }

// joins reports whether chunk c may follow first in a card number: both groups, or
// both single digits.
func joins(first, c string) bool {
	return cardGroup(first) && cardGroup(c) || len(first) == 1 && len(c) == 1
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// readAs is r as the card scan reads it, after NFKC: a decimal digit of any script is
// its ASCII digit (the Arabic-Indic ٤١١١, the Persian ۴۱۱۱ and the Devanagari ४१११ are
// the same number to a PCI assessor as 4111, and NFKC leaves them as they are), a dash
// of any kind (a word processor's en dash, Unicode's hyphen, the minus sign of a
// typeset document) is '-', a space NFKC leaves as it is (Unicode's line and paragraph
// separators, which a copy from a word processor may hold where a line broke, and the
// Ogham space mark) is ' ', and what shows nothing of its own between two digits is
// not there (-1): a combining mark (an underline, a keycap, a variation selector), a
// joiner or a directional mark hiddenIn takes, and any other formatting character past
// Latin-1 (hiddenIn refuses them, and Latin-1's soft hyphen).
func readAs(r rune) rune {
	const minusSign = '\u2212' // a math symbol to Unicode, not a dash
	switch {
	case r <= unicode.MaxLatin1: // after NFKC, none of these but ASCII's and hiddenIn's
		return r
	case unicode.IsDigit(r):
		return '0' + digitValue(r)
	case unicode.Is(unicode.Pd, r) || r == minusSign:
		return '-'
	case unicode.IsSpace(r):
		return ' '
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf):
		return -1
	}
	return r
}

// digitValue is the value of the decimal digit r. Unicode encodes each script's decimal
// digits as a run of ten, zero to nine (a stability policy), a few runs right after
// another: the value is r's place in its run of digits, modulo ten.
func digitValue(r rune) rune {
	first := r
	for unicode.IsDigit(first - 1) {
		first--
	}
	return (r - first) % 10
}

// uuidLength is the length of a UUID as written, 8-4-4-4-12 hexadecimal digits.
const uuidLength = 36

// minHexID is the fewest hexadecimal digits of an id written without dashes that the
// scan passes over: MongoDB's ObjectId has 24, a UUID without its dashes (ServiceNow's
// sys_id, a W3C trace id, an MD5) 32, a SHA-1 40. A card number alone is fewer digits,
// and a run of more than 19 is none: only one glued to five hexadecimal digits or
// more, which no typing does by mistake, would hide in such an id.
const minHexID = 24

// withoutIDs is s with every UUID and every long hexadecimal id in it blanked out, one
// written apart from other letters, digits and dashes: a session's id, or a case's or
// an interaction's in a reason, is no card number, but the digits of one UUID in 350
// pass for one, and of one 32-digit hexadecimal id in 600 (the run of digits between
// two of its letters). One run into other letters or digits is left as it is: it may
// hold a card number.
func withoutIDs(s string) string {
	if len(s) < minHexID {
		return s
	}
	var b []byte // s with the ids found so far blanked, once there is one
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) || !apart(s, i-1) {
			continue // no id begins here
		}
		n := idAt(s, i)
		if n == 0 {
			continue
		}
		if b == nil {
			b = []byte(s)
		}
		for j := i; j < i+n; j++ {
			b[j] = 'x'
		}
		i += n - 1
	}
	if b == nil {
		return s
	}
	return string(b)
}

// idAt is the length of the id that begins at s[i], after a character apart, and ends
// apart: a UUID in its 8-4-4-4-12 form, or minHexID hexadecimal digits or more; 0 for
// none.
func idAt(s string, i int) int {
	if uuidAt(s, i) {
		return uuidLength
	}
	n := 0
	for i+n < len(s) && isHex(s[i+n]) {
		n++
	}
	if n < minHexID || !apart(s, i+n) {
		return 0
	}
	return n
}

// uuidAt reports whether a UUID that ends apart begins at s[i]. Its dashes are looked
// at first: uuid.Validate makes an error for each place that holds none.
func uuidAt(s string, i int) bool {
	if i+uuidLength > len(s) {
		return false
	}
	u := s[i : i+uuidLength]
	return u[8] == '-' && u[13] == '-' && u[18] == '-' && u[23] == '-' &&
		apart(s, i+uuidLength) && uuid.Validate(u) == nil
}

func isHex(c byte) bool { return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'f' }

// apart reports whether s[i] does not run into an id next to it: out of s, or no ASCII
// letter, digit or dash.
func apart(s string, i int) bool {
	if i < 0 || i >= len(s) {
		return true
	}
	c := s[i]
	return c != '-' && !isDigit(c) && !('a' <= c|0x20 && c|0x20 <= 'z')
}

// luhn is the check digit test of card numbers (ISO/IEC 7812).
func luhn(digits string) bool {
	sum := 0
	for i, double := len(digits)-1, false; i >= 0; i, double = i-1, !double {
		d := int(digits[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// maxSeparators is how many spaces, tabs, dashes or line breaks a card number's groups
// may be written apart: "4111 - 1111", a double space pasted from a PDF, a blank line.
const maxSeparators = 3

// separator is the length of what separates a card number's groups at the start of s:
// up to maxSeparators spaces, tabs, dashes or line breaks (CRLF one of them); 0 for
// none.
func separator(s string) int {
	n := 0
	for range maxSeparators {
		switch {
		case strings.HasPrefix(s[n:], "\r\n"):
			n += 2
		case n < len(s) && strings.IndexByte(" \t\n\r-", s[n]) >= 0:
			n++
		default:
			return n
		}
	}
	return n
}
