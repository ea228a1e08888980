package sessions

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
)

// specUserIDPattern is the userId rule as openapi.yaml states it.
func specUserIDPattern(t testing.TB) *regexp.Regexp {
	raw, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`pattern: '([^']+)'`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("no userId pattern in openapi.yaml")
	}
	return regexp.MustCompile(string(m[1]))
}

// FuzzUserID: the gateway's userId rule is the spec's, and what it accepts is safe in
// a Redis key and a CXone query string; its canonical spelling lower-cases a UUID only.
func FuzzUserID(f *testing.F) {
	for _, s := range []string{"1234567", "a", "", "a b", "{x}", "a/b", "x.y_z:w@v-u", strings.Repeat("z", 128), strings.Repeat("z", 129), "é", "\x00",
		"11E9A5F0-8CF1-D3F0-9B0C-0242AC110003", "11e9a5f0-8cf1-d3f0-9b0c-0242ac110003", "11E9A5F0-8CF1-D3F0-9B0C-0242AC11000G", "11E9A5F08CF1D3F09B0C0242AC110003"} {
		f.Add(s)
	}
	spec := specUserIDPattern(f)
	uuidForm := regexp.MustCompile(`^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$`)
	f.Fuzz(func(t *testing.T, s string) {
		ok := ValidUserID(s)
		if ok != spec.MatchString(s) {
			t.Fatalf("ValidUserID(%q) = %v but the spec's pattern says %v", s, ok, !ok)
		}
		if ok && (len(s) > 128 || strings.ContainsAny(s, "{}/ ?&%#\x00\n") || !utf8.ValidString(s)) {
			t.Fatalf("ValidUserID accepted %q", s)
		}
		// The canonical spelling: a UUID's in lower case, any other userId as it is.
		want := s
		if uuidForm.MatchString(s) {
			want = strings.ToLower(s)
		}
		if c := CanonicalUserID(s); c != want || ValidUserID(c) != ok {
			t.Fatalf("CanonicalUserID(%q) = %q; want %q", s, c, want)
		}
	})
}

// FuzzCursor: a cursor is either one the service made (and round-trips) or invalid;
// never a panic, never a userId the rule refuses.
func FuzzCursor(f *testing.F) {
	for _, s := range []string{"", encodeCursor("agent-1"), "%%", "YQ", "YQ==", "!!", encodeCursor("{x}")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		after, err := decodeCursor(cursor)
		if err != nil {
			return
		}
		if cursor == "" {
			if after != "" {
				t.Fatal("empty cursor points somewhere")
			}
			return
		}
		if !ValidUserID(after) {
			t.Fatalf("cursor %q decodes to the invalid userId %q", cursor, after)
		}
		if encodeCursor(after) != cursor {
			t.Fatalf("cursor %q does not round-trip (%q)", cursor, encodeCursor(after))
		}
	})
}

// FuzzCardNumberInReason: a card number written in four groups, between any two texts,
// is found, in ASCII digits or Arabic-Indic ones, and one whose groups a character that
// shows nothing of its own splits (a joiner, a zero-width space, a soft hyphen, a
// directional mark, a combining mark, a keycap) is refused, as hidden or as a card
// number; a UUID and a hexadecimal id (of each input) are never taken for one; any
// text at all is judged without a panic.
func FuzzCardNumberInReason(f *testing.F) {
	for _, s := range [][2]string{{"", ""}, {"card", "12/29"}, {"77-", "-5"}, {"12 34", "56 78"}, {"é", "\x00"}, {"カード", "１"}, {"\u00a0", "\u0301"}, {"می", "شود"}, {"👩", "💻"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, before, after string) {
		holdsCardNumber(before + after)
		if !holdsCardNumber(before + " 4111 1111 1111 1111 " + after) {
			t.Fatalf("no card number found in %q", before+" 4111 1111 1111 1111 "+after)
		}
		if !holdsCardNumber(before + " ٤١١١ ١١١١ ١١١١ ١١١١ " + after) {
			t.Fatalf("no card number found in %q", before+" ٤١١١ ١١١١ ١١١١ ١١١١ "+after)
		}
		if id := uuid.NewSHA1(uuid.Nil, []byte(before+after)).String(); holdsCardNumber("case " + id + ", " + strings.ToUpper(id)) {
			t.Fatalf("the UUID %s taken for a card number", id)
		}
		sum := sha256.Sum256([]byte(before + after))
		for _, n := range []int{minHexID / 2, 16, 20, 32} {
			if id := hex.EncodeToString(sum[:n]); holdsCardNumber("id " + id + ", " + strings.ToUpper(id)) {
				t.Fatalf("the hexadecimal id %s taken for a card number", id)
			}
		}
		hiddenIn(before + after)
		for _, between := range []string{"\u200d", "\u200c", "\u200b", "\u00ad", "\u200e", "\u200f", "\u061c", "\u0332", "\ufe0f\u20e3"} {
			if split := before + " 4111" + between + "1111" + between + "1111" + between + "1111 " + after; !hiddenIn(split) && !holdsCardNumber(split) {
				t.Fatalf("a card number split by %+q taken in %q", between, split)
			}
		}
	})
}
