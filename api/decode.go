package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/oapi-codegen/runtime"
)

// The generated server decodes request bodies with the runtime's process-wide JSON
// codec; this package's is encoding/json, except that a body must hold one JSON value
// and nothing after it.
func init() { runtime.SetJSONCodec(bodyCodec{}) }

// bodyCodec is encoding/json with a body read as one value: encoding/json's Decoder
// reads the first value and leaves the rest, so {"ttlSeconds":60}{"ttlSeconds":1}
// would be read as its first half. Trailing white space is fine (encoders end with a
// newline).
type bodyCodec struct{ runtime.StdJSONCodec }

var errTrailingData = errors.New("the request body must be one JSON value with nothing after it")

func (bodyCodec) MarshalWrite(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

func (bodyCodec) UnmarshalRead(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailingData
	}
	return nil
}

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
