package api

import (
	"bytes"
	"encoding/json"
	"errors"
)

// UnmarshalJSON decodes a mask request strictly: unknown fields are an error, so a
// caller's typo ("ttl" for "ttlSeconds") is answered 400 instead of being ignored.
func (m *MaskRequest) UnmarshalJSON(data []byte) error {
	type plain MaskRequest
	return decodeStrict(data, (*plain)(m))
}

// UnmarshalJSON decodes an unmask request strictly: unknown fields are an error.
func (u *UnmaskRequest) UnmarshalJSON(data []byte) error {
	type plain UnmaskRequest
	return decodeStrict(data, (*plain)(u))
}

func decodeStrict(data []byte, v any) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return errors.New("body must be a JSON object, not null")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
