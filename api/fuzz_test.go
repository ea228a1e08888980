package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/oapi-codegen/runtime"

	"github.com/maskgate/maskgate/api"
)

// FuzzRequestBodies: the server reads a body as json.Unmarshal would, except that it
// refuses what json.Unmarshal lets through: a field the spec does not name, a field
// named twice or in another case, a string that is not UTF-8, and null (for the body
// or a field). A body it
// takes decodes into the same values as json.Unmarshal's; never a panic.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{`{}`, `{"reason":"payment","ttlSeconds":300}`, `{"ttl":3}`, `null`, " null\n", `[]`, `{"reason":5}`,
		`{"sessionId":"x"}`, `{"ttlSeconds":1e400}`, `{"reason":"a","reason":"b"}`, `{"REASON":"x"}`, `{"ſessionId":"x"}`, `"x"`, ``, `{"ttlSeconds":60}{"ttlSeconds":1}`, "{}\n", `{} x`, "{}\v", "\fnull",
		"{\"reason\":\"\xff\"}", `{"reason":"\ud800"}`, `{"reason":"\ud83d\ude00"}`, `{"reason":"\\ud800"}`, `{"reason":"\u00e9"}`,
		`{"sessionId":null}`, `{"reason":"x","ttlSeconds":null}`, `{"reason":"x","ttlSeconds": null }`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		readAs(t, body, &api.MaskRequest{}, &api.MaskRequest{}, "reason", "ttlSeconds")
		readAs(t, body, &api.UnmaskRequest{}, &api.UnmaskRequest{}, "sessionId")
	})
}

// readAs decodes body into read as the server does and into want with json.Unmarshal.
// The server takes it only when json.Unmarshal does, it is not null, names only the
// spec's fields, each once and exactly and none null, and is UTF-8; then it reads the same values.
// It refuses it only for one of those reasons, or for an escaped UTF-16 surrogate
// that pairs with none (json.Unmarshal replaces it; that it pairs is not checked
// here). An empty body is a body left out.
func readAs(t *testing.T, body []byte, read, want any, fields ...string) {
	t.Helper()
	err := runtime.JSONUnmarshalRead(bytes.NewReader(body), read)
	if err == io.EOF {
		if len(bytes.Trim(body, " \t\n\r")) > 0 {
			t.Fatalf("%q read as an empty body", body)
		}
		return
	}
	valid := json.Unmarshal(body, want) == nil && !bytes.Equal(bytes.Trim(body, " \t\n\r"), []byte("null")) &&
		exactFields(body, fields) && utf8.Valid(body)
	switch {
	case err == nil && !valid:
		t.Fatalf("%q into %T: the server took it; json.Unmarshal, null, the spec's fields or UTF-8 refuse it", body, read)
	case err != nil && valid && !surrogateEscape.Match(body):
		t.Fatalf("%q into %T: the server says %v; json.Unmarshal, the spec's fields, not null and UTF-8 take it", body, read, err)
	case err == nil && !reflect.DeepEqual(read, want):
		t.Fatalf("%q: the server read %+v, json.Unmarshal %+v", body, read, want)
	}
}

// surrogateEscape is a \u escape of a UTF-16 surrogate (or a backslash and such
// letters: a body that matches is only not checked for being refused).
var surrogateEscape = regexp.MustCompile(`(?i)\\ud[89a-f]`)

// exactFields: body is an object each of whose fields is one of names, spelt exactly
// so, named once, and not null.
func exactFields(body []byte, names []string) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	var seen []string
	for dec.More() {
		tok, err := dec.Token()
		name, isName := tok.(string)
		if err != nil || !isName || !slices.Contains(names, name) || slices.Contains(seen, name) {
			return false
		}
		seen = append(seen, name)
		var value json.RawMessage
		if dec.Decode(&value) != nil || string(value) == "null" {
			return false
		}
	}
	return true
}
