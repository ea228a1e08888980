package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/oapi-codegen/runtime"
)

// The generated server decodes request bodies with the runtime's process-wide JSON
// codec; this package's is encoding/json made strict.
func init() { runtime.SetJSONCodec(bodyCodec{}) }

// bodyCodec is encoding/json with a body read strictly, in one pass of the decoder:
//   - unknown fields are an error, so a caller's typo ("ttl" for "ttlSeconds") is
//     answered 400 instead of being ignored;
//   - a body must hold one JSON value and nothing after it but white space (encoders
//     end with a newline): encoding/json's Decoder reads the first value and leaves
//     the rest, so {"ttlSeconds":60}{"ttlSeconds":1} would be read as its first half;
//   - null is not an object, though encoding/json would leave the request empty.
//
// The body is read whole first (LimitBody bounds it): the runtime hands over a reader
// that replays the byte it peeked at, and a Decoder over that reads it in small pieces
// and grows its buffer twice.
type bodyCodec struct{ runtime.StdJSONCodec }

var (
	errTrailingData = errors.New("the request body must be one JSON value with nothing after it")
	errNull         = errors.New("the request body must be a JSON object, not null")
)

// jsonSpace is JSON's white space (RFC 8259): not \v, \f or Unicode's, which
// bytes.TrimSpace would also take away.
const jsonSpace = " \t\n\r"

// MarshalWrite completes runtime.StreamingJSONCodec: the runtime hands a body to
// UnmarshalRead only when the codec has both methods. (The generated server encodes
// its answers with encoding/json itself, not through the codec.)
func (bodyCodec) MarshalWrite(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

func (bodyCodec) UnmarshalRead(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if bytes.Equal(bytes.Trim(data, jsonSpace), []byte("null")) {
		return errNull
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if len(bytes.Trim(data[dec.InputOffset():], jsonSpace)) > 0 {
		return errTrailingData
	}
	return nil
}
