package api_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/oapi-codegen/runtime"

	"github.com/maskgate/maskgate/api"
)

// BenchmarkDecodeMaskRequest decodes a body as the generated server does, through the
// runtime's codec.
func BenchmarkDecodeMaskRequest(b *testing.B) {
	body := []byte(`{"reason":"payment","ttlSeconds":300}`)
	b.ReportAllocs()
	for b.Loop() {
		var m api.MaskRequest
		if err := runtime.JSONUnmarshalRead(bytes.NewReader(body), &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeSession(b *testing.B) {
	reason := "payment"
	s := api.Session{SessionId: "5f0c8a4e-2b7d-4d43-9a57-bf1f0a2f8c11", UserId: "1234567", State: api.Masked,
		MaskedAt: time.Now(), ExpiresAt: time.Now().Add(5 * time.Minute), MaskedBy: "crm-app", Reason: &reason}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(s); err != nil {
			b.Fatal(err)
		}
	}
}
