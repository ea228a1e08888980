package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/oapi-codegen/runtime"

	"github.com/maskgate/maskgate/api"
)

// FuzzRequestBodies: the server reads a body as json.Unmarshal would, except that it
// refuses what json.Unmarshal lets through: a field the spec does not name, and null.
// A body it takes decodes into the same values as json.Unmarshal's; never a panic.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{`{}`, `{"reason":"payment","ttlSeconds":300}`, `{"ttl":3}`, `null`, " null\n", `[]`, `{"reason":5}`,
		`{"sessionId":"x"}`, `{"ttlSeconds":1e400}`, `{"reason":"a","reason":"b"}`, `{"REASON":"x"}`, `{"ſessionId":"x"}`, `"x"`, ``, `{"ttlSeconds":60}{"ttlSeconds":1}`, "{}\n", `{} x`, "{}\v", "\fnull"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		readAs(t, body, &api.MaskRequest{}, &api.MaskRequest{}, "reason", "ttlSeconds")
		readAs(t, body, &api.UnmaskRequest{}, &api.UnmaskRequest{}, "sessionId")
	})
}

// readAs decodes body into read as the server does and into want with json.Unmarshal,
// and checks that the server took it exactly when json.Unmarshal did, it is not null,
// and it names no field but the spec's (an empty body aside: it is a body left out).
func readAs(t *testing.T, body []byte, read, want any, fields ...string) {
	t.Helper()
	err := runtime.JSONUnmarshalRead(bytes.NewReader(body), read)
	if err == io.EOF {
		if len(bytes.TrimSpace(body)) > 0 {
			t.Fatalf("%q read as an empty body", body)
		}
		return
	}
	valid := json.Unmarshal(body, want) == nil && !bytes.Equal(bytes.Trim(body, " \t\n\r"), []byte("null")) && onlyFields(body, fields)
	if (err == nil) != valid {
		t.Fatalf("%q into %T: the server says %v; json.Unmarshal, the spec's fields and not null say valid=%v", body, read, err, valid)
	}
	if err == nil && !reflect.DeepEqual(read, want) {
		t.Fatalf("%q: the server read %+v, json.Unmarshal %+v", body, read, want)
	}
}

// onlyFields: body is an object whose every field is one of names, matched as
// encoding/json matches them (Unicode case folding: "ſessionId" is sessionId).
func onlyFields(body []byte, names []string) bool {
	var probe map[string]json.RawMessage
	if json.Unmarshal(body, &probe) != nil {
		return false
	}
	for k := range probe {
		known := false
		for _, n := range names {
			known = known || strings.EqualFold(k, n)
		}
		if !known {
			return false
		}
	}
	return true
}
