package sessions

import (
	"testing"
	"unicode"
)

// digitValue reads a digit's value from its place in its run of ten: that holds while
// every run of decimal digits in Go's Unicode tables is whole tens (Unicode's stability
// policy), which this checks, with known digits of scripts a card number is typed in.
func TestDigitValueOfEveryScript(t *testing.T) {
	for r, run := rune(0), 0; r <= unicode.MaxRune+1; r++ {
		if r <= unicode.MaxRune && unicode.IsDigit(r) {
			run++
			continue
		}
		if run%10 != 0 {
			t.Errorf("the decimal digits before %U run %d long: not whole tens (Unicode %s)", r, run, unicode.Version)
		}
		run = 0
	}
	for r, want := range map[rune]rune{
		'7': 7, '٤': 4, '۵': 5, '९': 9, '৩': 3, '๖': 6, '１': 1,
		'\U000116DA': 0, '\U000116E3': 9, // the second of two runs of ten in a row (Myanmar Extended-C, Unicode 16)
	} {
		if !unicode.IsDigit(r) {
			continue // a digit of a newer Unicode than the Go that runs the test knows (go.mod's go line)
		}
		if got := digitValue(r); got != want {
			t.Errorf("digitValue(%q %U) = %d; want %d", r, r, got, want)
		}
	}
}
