package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"

	"github.com/oapi-codegen/runtime"

	"github.com/maskgate/maskgate/api"
)

// FuzzRequestBodies: a body either decodes into exactly the fields the spec names (and
// then encodes back to the same values) or is refused, by the server as by
// json.Unmarshal; never a panic.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{`{}`, `{"reason":"payment","ttlSeconds":300}`, `{"ttl":3}`, `null`, `[]`, `{"reason":5}`,
		`{"sessionId":"x"}`, `{"ttlSeconds":1e400}`, `{"reason":"a","reason":"b"}`, `{"REASON":"x"}`, `"x"`, ``, `{"ttlSeconds":60}{"ttlSeconds":1}`, "{}\n", `{} x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// The server reads a body as json.Unmarshal would: the same bodies, the same
		// values (an empty one aside: it is a body left out).
		var m, read api.MaskRequest
		err := json.Unmarshal(body, &m)
		if rerr := runtime.JSONUnmarshalRead(bytes.NewReader(body), &read); rerr != io.EOF &&
			((err == nil) != (rerr == nil) || err == nil && !reflect.DeepEqual(m, read)) {
			t.Fatalf("%q: json.Unmarshal %+v, %v; the server %+v, %v", body, m, err, read, rerr)
		}
		if err == nil {
			again, _ := json.Marshal(m)
			var m2 api.MaskRequest
			if err := json.Unmarshal(again, &m2); err != nil {
				t.Fatalf("%s decoded but its encoding %s does not", body, again)
			}
		}
		var u api.UnmaskRequest
		if err := json.Unmarshal(body, &u); err == nil {
			var probe map[string]json.RawMessage
			if json.Unmarshal(body, &probe) == nil {
				for k := range probe {
					if k != "sessionId" && !equalFold(k, "sessionId") {
						t.Fatalf("unmask body %s with field %q accepted", body, k)
					}
				}
			}
		}
	})
}

// equalFold: encoding/json matches field names case-insensitively.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}
