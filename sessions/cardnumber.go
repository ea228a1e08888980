package sessions

import "golang.org/x/text/unicode/norm"

// holdsCardNumber reports whether s holds what looks like a payment card number: 13 to
// 19 digits that pass the Luhn check, written alone or in groups separated by single
// spaces or dashes, also when more digits follow in the same way ("4111 1111 1111 1111
// 12/29"). A reason goes to Redis and into the audit trail, where a PCI environment
// must never store one. Digits, spaces and dashes are read in their compatibility
// form (NFKC), so that the full-width ones of a Japanese or Chinese input method, or a
// no-break space, do not hide a number.
func holdsCardNumber(s string) bool {
	s = norm.NFKC.String(s)
	var chunks []string // the digit runs of one group, each followed by one space or dash
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
		if i+1 < len(s) && (s[i] == ' ' || s[i] == '-') && isDigit(s[i+1]) {
			continue // the group goes on after the separator
		}
		if cardNumberIn(chunks) {
			return true
		}
		chunks = chunks[:0]
	}
	return false
}

// cardNumberIn reports whether consecutive chunks of one group join into a card number.
func cardNumberIn(chunks []string) bool {
	for i := range chunks {
		digits := ""
		for _, c := range chunks[i:] {
			if digits += c; len(digits) > 19 {
				break
			}
			if len(digits) >= 13 && luhn(digits) {
				return true
			}
		}
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

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
