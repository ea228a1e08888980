package sessions_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/maskgate/maskgate/sessions"
)

// Input the contract refuses never reaches Redis or CXone, and a reason's numbers that
// are no card number are let through.

func TestInvalidInputIsRefusedBeforeRedisAndCXone(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		in   sessions.MaskInput
		want error
	}{
		{"empty user id", sessions.MaskInput{UserID: ""}, sessions.ErrInvalidUserID},
		{"user id with a slash", sessions.MaskInput{UserID: "a/b"}, sessions.ErrInvalidUserID},
		{"user id with a space", sessions.MaskInput{UserID: "a b"}, sessions.ErrInvalidUserID},
		{"user id with a brace", sessions.MaskInput{UserID: "{x}"}, sessions.ErrInvalidUserID},
		{"user id of 129 characters", sessions.MaskInput{UserID: strings.Repeat("a", 129)}, sessions.ErrInvalidUserID},
		{"reason of 201 characters", sessions.MaskInput{UserID: "a", Reason: strings.Repeat("é", 201)}, sessions.ErrInvalidInput},
		{"reason with a card number", sessions.MaskInput{UserID: "a", Reason: "card 4111111111111111 exp 12/29"}, sessions.ErrInvalidInput},
		{"reason with a spaced card number", sessions.MaskInput{UserID: "a", Reason: "4111 1111 1111 1111"}, sessions.ErrInvalidInput},
		{"reason with a dashed card number", sessions.MaskInput{UserID: "a", Reason: "pan:5500-0000-0000-0004."}, sessions.ErrInvalidInput},
		{"reason with a 15-digit card number", sessions.MaskInput{UserID: "a", Reason: "amex 378282246310005"}, sessions.ErrInvalidInput},
		{"reason with a 13-digit card number", sessions.MaskInput{UserID: "a", Reason: "visa 4222222222222"}, sessions.ErrInvalidInput},
		// A UUID's form runs into the digits after it: not an id, and the card number
		// that begins in its last group is read.
		{"reason with a card number glued to a UUID's form", sessions.MaskInput{UserID: "a", Reason: "case 12345678-1234-1234-1234-4111111111111111"}, sessions.ErrInvalidInput},
		{"reason with an American Express number in its groups", sessions.MaskInput{UserID: "a", Reason: "amex 3782 822463 10005"}, sessions.ErrInvalidInput},
		{"reason with a Diners Club number in its groups", sessions.MaskInput{UserID: "a", Reason: "3056 930902 5904"}, sessions.ErrInvalidInput},
		{"reason with a 19-digit card number ending in a group of three", sessions.MaskInput{UserID: "a", Reason: "6805 8887 1803 3401 878"}, sessions.ErrInvalidInput},
		{"reason with a card number and its expiry", sessions.MaskInput{UserID: "a", Reason: "4111 1111 1111 1111 12/29"}, sessions.ErrInvalidInput},
		{"reason with a card number after other digits", sessions.MaskInput{UserID: "a", Reason: "ref 77-5500 0000 0000 0004"}, sessions.ErrInvalidInput},
		// Typed through a Japanese or Chinese input method, or pasted with no-break
		// spaces: the same number to a PCI assessor.
		{"reason with a full-width card number", sessions.MaskInput{UserID: "a", Reason: "カード ４１１１ １１１１ １１１１ １１１１"}, sessions.ErrInvalidInput},
		{"reason with a card number in no-break spaces", sessions.MaskInput{UserID: "a", Reason: "4111\u00a01111\u00a01111\u00a01111"}, sessions.ErrInvalidInput},
		{"reason with a card number in full-width dashes", sessions.MaskInput{UserID: "a", Reason: "5500－0000－0000－0004"}, sessions.ErrInvalidInput},
		// Typed on an Arabic, Persian or Hindi keyboard, or autocorrected by a word
		// processor: a card number all the same.
		{"reason with an Arabic-Indic card number", sessions.MaskInput{UserID: "a", Reason: "بطاقة ٤١١١ ١١١١ ١١١١ ١١١١"}, sessions.ErrInvalidInput},
		{"reason with a Persian card number", sessions.MaskInput{UserID: "a", Reason: "کارت ۵۵۰۰-۰۰۰۰-۰۰۰۰-۰۰۰۴"}, sessions.ErrInvalidInput},
		{"reason with a Devanagari card number", sessions.MaskInput{UserID: "a", Reason: "कार्ड ३७८२८२२४६३१०००५"}, sessions.ErrInvalidInput},
		{"reason with a card number in en dashes", sessions.MaskInput{UserID: "a", Reason: "4111–1111–1111–1111"}, sessions.ErrInvalidInput},
		{"reason with a card number in minus signs", sessions.MaskInput{UserID: "a", Reason: "4111\u22121111\u22121111\u22121111"}, sessions.ErrInvalidInput},
		{"reason with a card number in Unicode hyphens", sessions.MaskInput{UserID: "a", Reason: "4111\u20101111\u20101111\u20101111"}, sessions.ErrInvalidInput},
		// A CRM's multi-line note, or cells pasted from a spreadsheet.
		{"reason with a card number across lines", sessions.MaskInput{UserID: "a", Reason: "card\n4111\n1111\n1111\n1111"}, sessions.ErrInvalidInput},
		{"reason with a card number across Windows lines", sessions.MaskInput{UserID: "a", Reason: "4111\r\n1111\r\n1111\r\n1111"}, sessions.ErrInvalidInput},
		{"reason with a card number across Unicode line separators", sessions.MaskInput{UserID: "a", Reason: "4111\u20281111\u20281111\u20281111"}, sessions.ErrInvalidInput},
		{"reason with a card number across Unicode paragraph separators", sessions.MaskInput{UserID: "a", Reason: "4111\u20291111\u20291111\u20291111"}, sessions.ErrInvalidInput},
		{"reason with a card number in Ogham space marks", sessions.MaskInput{UserID: "a", Reason: "4111\u16801111\u16801111\u16801111"}, sessions.ErrInvalidInput},
		{"reason with a card number in tabs", sessions.MaskInput{UserID: "a", Reason: "4111\t1111\t1111\t1111"}, sessions.ErrInvalidInput},
		// Written a little apart: a double space pasted from a PDF, dashes with spaces
		// around them, a blank line between the groups of a note.
		{"reason with a card number in double spaces", sessions.MaskInput{UserID: "a", Reason: "4111  1111  1111  1111"}, sessions.ErrInvalidInput},
		{"reason with a card number in spaced dashes", sessions.MaskInput{UserID: "a", Reason: "4111 - 1111 - 1111 - 1111"}, sessions.ErrInvalidInput},
		// A card number read out, as a speech-to-text transcript writes it.
		{"reason with a card number digit by digit", sessions.MaskInput{UserID: "a", Reason: "caller said 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 then"}, sessions.ErrInvalidInput},
		{"reason with a card number digit by digit in dashes", sessions.MaskInput{UserID: "a", Reason: "5-5-0-0-0-0-0-0-0-0-0-0-0-0-0-4"}, sessions.ErrInvalidInput},
		// A UUID is no card number, but one beside it, or one run into a UUID's form,
		// still is.
		{"reason with a card number after a UUID", sessions.MaskInput{UserID: "a", Reason: "case 21434646-9063-4714-a6dd-666dbef09ea6 4111 1111 1111 1111"}, sessions.ErrInvalidInput},
		{"reason with a card number run into a UUID's form", sessions.MaskInput{UserID: "a", Reason: "4111111111111111-1111-1111-1111-111111111111"}, sessions.ErrInvalidInput},
		{"reason with a card number in a hexadecimal id's form after a letter", sessions.MaskInput{UserID: "a", Reason: "xf61dc9503722998615910ad386112f3a"}, sessions.ErrInvalidInput},
		{"reason with a card number in a hexadecimal id's form after a dash", sessions.MaskInput{UserID: "a", Reason: "ref-f61dc9503722998615910ad386112f3a"}, sessions.ErrInvalidInput},
		{"reason with a card number in a hexadecimal id's form before a dash", sessions.MaskInput{UserID: "a", Reason: "f61dc9503722998615910ad386112f3a-2"}, sessions.ErrInvalidInput},
		{"reason with a card number before hexadecimal digits", sessions.MaskInput{UserID: "a", Reason: "4111111111111111abcdef"}, sessions.ErrInvalidInput},
		{"reason with a card number in blank lines", sessions.MaskInput{UserID: "a", Reason: "4111\r\n\r\n1111\r\n\r\n1111\r\n\r\n1111"}, sessions.ErrInvalidInput},
		// What does not show as what it is: a card number a log viewer shows whole,
		// an escape sequence for the reader's terminal, text shown reversed.
		{"reason with zero-width spaces in a card number", sessions.MaskInput{UserID: "a", Reason: "4111\u200b1111\u200b1111\u200b1111"}, sessions.ErrInvalidInput},
		{"reason with a soft hyphen in a card number", sessions.MaskInput{UserID: "a", Reason: "4111111111\u00ad111111"}, sessions.ErrInvalidInput},
		{"reason with an escape sequence", sessions.MaskInput{UserID: "a", Reason: "payment\x1b[2J"}, sessions.ErrInvalidInput},
		{"reason with a right-to-left override", sessions.MaskInput{UserID: "a", Reason: "\u202etnemyap"}, sessions.ErrInvalidInput},
		// A joiner or non-joiner only where writing needs one: never beside a digit or
		// a space (a card number split by them shows whole), nor in ASCII text.
		{"reason with zero-width joiners in a card number", sessions.MaskInput{UserID: "a", Reason: "4111\u200d1111\u200d1111\u200d1111"}, sessions.ErrInvalidInput},
		{"reason with zero-width non-joiners in a card number", sessions.MaskInput{UserID: "a", Reason: "كارت 4111\u200c1111\u200c1111\u200c1111"}, sessions.ErrInvalidInput},
		{"reason with zero-width non-joiners between Arabic-Indic digits", sessions.MaskInput{UserID: "a", Reason: "\u0664\u0661\u0661\u0661\u200c\u0661\u0661\u0661\u0661"}, sessions.ErrInvalidInput},
		{"reason with a zero-width joiner between ASCII letters", sessions.MaskInput{UserID: "a", Reason: "pay\u200dment"}, sessions.ErrInvalidInput},
		{"reason with a zero-width joiner before a space", sessions.MaskInput{UserID: "a", Reason: "می\u200c شود"}, sessions.ErrInvalidInput},
		{"reason that begins with a zero-width joiner", sessions.MaskInput{UserID: "a", Reason: "\u200dشود"}, sessions.ErrInvalidInput},
		{"reason that ends with a zero-width non-joiner", sessions.MaskInput{UserID: "a", Reason: "می\u200c"}, sessions.ErrInvalidInput},
		{"reason with two joiners in a row", sessions.MaskInput{UserID: "a", Reason: "👩\u200d\u200d💻"}, sessions.ErrInvalidInput},
		{"reason with a right-to-left isolate", sessions.MaskInput{UserID: "a", Reason: "\u2067payment\u2069"}, sessions.ErrInvalidInput},
		// A directional mark, a combining mark or a keycap shows nothing of its own
		// between two digits: the scan reads past it.
		{"reason with right-to-left marks in a card number", sessions.MaskInput{UserID: "a", Reason: "כרטיס 4111\u200f1111\u200f1111\u200f1111"}, sessions.ErrInvalidInput},
		{"reason with a left-to-right mark in a card number's group", sessions.MaskInput{UserID: "a", Reason: "41\u200e11 1111 1111 1111"}, sessions.ErrInvalidInput},
		{"reason with Arabic letter marks after an Arabic-Indic card number's groups", sessions.MaskInput{UserID: "a", Reason: "بطاقة ٤١١١\u061c ١١١١\u061c ١١١١\u061c ١١١١"}, sessions.ErrInvalidInput},
		{"reason with an underlined card number", sessions.MaskInput{UserID: "a", Reason: "4\u03321\u03321\u03321\u0332 1111 1111 1111"}, sessions.ErrInvalidInput},
		{"reason with a card number in keycaps", sessions.MaskInput{UserID: "a", Reason: keycaps("4111111111111111")}, sessions.ErrInvalidInput},
		{"reason with tag characters", sessions.MaskInput{UserID: "a", Reason: "🏴\U000e0067\U000e0062\U000e007f"}, sessions.ErrInvalidInput},
		{"ttl 0", sessions.MaskInput{UserID: "a", TTLSeconds: new(0)}, sessions.ErrInvalidInput},
		{"ttl negative", sessions.MaskInput{UserID: "a", TTLSeconds: new(-5)}, sessions.ErrInvalidInput},
		{"ttl over the maximum", sessions.MaskInput{UserID: "a", TTLSeconds: new(7201)}, sessions.ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.svc.Mask(context.Background(), tt.in); !errors.Is(err, tt.want) {
				t.Errorf("Mask = %v; want %v", err, tt.want)
			}
		})
	}
	for _, id := range []string{"", strings.Repeat("a", 65), "\x1b[2J", "x\ny", "séance", "4111 1111 1111 1111"} {
		if _, err := f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", SessionID: new(id)}); !errors.Is(err, sessions.ErrInvalidInput) {
			t.Errorf("Unmask with sessionId %q = %v; want ErrInvalidInput", id, err)
		}
	}
	if keys := f.stateKeys(t); len(keys) != 0 {
		t.Errorf("invalid input reached Redis: %v", keys)
	}
	if n := len(f.sim.Requests()); n != 0 {
		t.Errorf("invalid input reached CXone %d times", n)
	}
	for _, ok := range []string{"1234567", "a", strings.Repeat("z", 128), "11111111-2222-3333-4444-555555555555", "x.y_z:w@v-u"} {
		if !sessions.ValidUserID(ok) {
			t.Errorf("ValidUserID(%q) = false", ok)
		}
	}
}

// Every session's id is a UUID, and about one in 350 UUIDs has digit groups that,
// joined, pass for a card number: the scan passes over UUIDs, so that no session is
// one its unmask cannot name (nor a reason that names a case by its UUID refused).
func TestASessionIdInAUUIDsFormIsNeverTakenForACardNumber(t *testing.T) {
	for _, id := range []string{"21434646-9063-4714-a6dd-666dbef09ea6", "716ea641-3614-4560-9547-195aae98c80c", "716EA641-3614-4560-9547-195AAE98C80C"} {
		if err := (sessions.UnmaskInput{UserID: "a", SessionID: &id}).Validate(); err != nil {
			t.Errorf("sessionId %s refused: %v", id, err)
		}
	}
	for _, id := range []string{"4111111111111111", "pan 4111-1111-1111-1111"} {
		if err := (sessions.UnmaskInput{UserID: "a", SessionID: &id}).Validate(); !errors.Is(err, sessions.ErrInvalidInput) {
			t.Errorf("sessionId %q: %v; want ErrInvalidInput", id, err)
		}
	}
}

// A reason is free text that goes to Redis and into the audit trail: it may hold
// numbers, but not a card number, which a PCI environment must never store.
func TestReasonMayHoldNumbersButNotACardNumber(t *testing.T) {
	for _, reason := range []string{
		"payment",
		"order 4111111111111112",   // 16 digits, Luhn fails
		"ticket 123456789012",      // 12 digits
		"ref 41111111111111111115", // 20 digits, though they pass Luhn's check: no card number
		"call 2026-11-26 10:00, case 1234-5678, 3 items", // digits in groups
		"4111    1111 1111 1111",                         // four spaces apart: two numbers, neither a card number
		"rating 5 5 4 3 5",                               // single digits, too few for a card number
		"scores 1 2 3 4 5 6 7 8 9 1 2 3 4",               // 13 single digits, Luhn fails
		"rappeler 06 12 34 56 78 01 42 68 53 00",         // French phone numbers in pairs, which would pass joined
		// Dates and what follows them: their two-digit parts join into no card number
		// (each of these passed Luhn's check when they did).
		"leave 2026-12-04 - 2026-12-11",
		"leave 2026-12-12 2026-12-19",
		"order 2026-12-08 1234567",
		// Groups no card number is written in: an Amazon order number's seven digits
		// (one in five of these passed Luhn's check when they joined), a date written
		// without dashes before two times (this one did).
		"refund for order 112-3456789-0123456",
		"shift 20261208 0900 1730",
		// Written as the README advises for numbers whose groups may join into one: a
		// tracking number without its spaces, phone numbers apart with a comma (this
		// pair is one with only a space between them).
		"tracking 9400111899223397981234",
		"call 415 555 0134, 212 555 0199",
		// A case's or an interaction's id, whose digit groups, joined, pass for a card
		// number's about once in 350 UUIDs.
		"case 21434646-9063-4714-a6dd-666dbef09ea6",
		"{716EA641-3614-4560-9547-195AAE98C80C}, 716ea641-3614-4560-9547-195aae98c80c",
		// Hexadecimal ids, whose runs of digits between two letters pass for a card
		// number once in 400 to 900 ids (a ServiceNow sys_id, a W3C trace id, a
		// MongoDB ObjectId, a git commit; each of these did).
		"sys_id=f61dc9503722998615910ad386112f3a",
		"trace AE49D2FE41838247997707F37F88E31C",
		"order 6217d09687190714566569da",
		"commit 5913061004627aa5d20bd05710bfd7ecffa77557",
		"payment\nsecond line,\tafter a tab\r\n", // a multi-line note
		"café 💳 カード",
		"طلب ٤١١١١١١١١١١١١١١٢", // Arabic-Indic digits, Luhn fails
		"سفارش ۱۲۳۴–۵۶۷۸",      // Persian digits in an en dash
		// Writing that needs a zero-width joiner or non-joiner: a Persian word, a
		// Hindi half-form, Sri Lanka in Sinhala, emoji sequences (with a variation
		// selector, a skin tone).
		"پرداخت می\u200cشود",
		"क्\u200dष",
		"ශ්\u200dරී ලංකා",
		"👩\u200d💻 ❤️\u200d🔥 👩🏽\u200d💻",
		// Directional marks, which Hebrew and Arabic editors put where right-to-left
		// text meets a number or Latin text, and keycaps.
		"הזמנה \u200e#1234-56\u200f תשלום",
		"طلب \u061c١٢٣٤٥ دفع",
		"\u200fpayment\u200e",
		"step " + keycaps("3"),
	} {
		if err := (sessions.MaskInput{UserID: "a", Reason: reason}).Validate(time.Hour); err != nil {
			t.Errorf("reason %q refused: %v", reason, err)
		}
	}
	err := (sessions.MaskInput{UserID: "a", Reason: "4111111111111111"}).Validate(time.Hour)
	if !errors.Is(err, sessions.ErrInvalidInput) || strings.Contains(err.Error(), "4111") {
		t.Errorf("a card number as reason: %v; want ErrInvalidInput, without the number", err)
	}
}

// keycaps is digits written as keycap emoji: each digit, an emoji variation selector
// and the combining enclosing keycap.
func keycaps(digits string) string {
	var b strings.Builder
	for _, d := range digits {
		b.WriteString(string(d) + "\ufe0f\u20e3")
	}
	return b.String()
}
