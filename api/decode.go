package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/oapi-codegen/runtime"
)

// The generated server decodes request bodies with the runtime's process-wide JSON
// codec; this package's reads them strictly.
func init() { runtime.SetJSONCodec(bodyCodec{}) }

// bodyCodec reads a body with encoding/json/v2's semantics (its mirror,
// github.com/go-json-experiment/json, while go.mod's go line allows Go 1.26), which
// refuse what encoding/json lets through:
//   - a field the spec does not name, so a caller's typo ("ttl" for "ttlSeconds") is
//     answered 400 instead of being ignored;
//   - a field named twice, or spelt in another case ("TtlSeconds", or "ttlſeconds"
//     with a long s): encoding/json takes the last of two and folds case, so
//     {"ttlSeconds":60,"TtlSeconds":7200} would open a two-hour mask where a proxy,
//     a log reader or the caller's own check that reads the exact name sees a minute;
//   - strings that are not UTF-8 (encoding/json replaces the bytes without a word);
//   - a body that holds more than one JSON value ({"ttlSeconds":60}{"ttlSeconds":1});
//     white space after it is fine (encoders end with a newline);
//   - null, which is not an object, though either package would leave the request
//     empty; nor is it the value of any field of the spec's (none is nullable),
//     though either package would take it for the field left out: {"sessionId":null}
//     from a CRM that lost the id would unmask whatever session is open.
//
// The body is read whole first (LimitBody bounds it) and decoded from memory: the
// runtime hands over a reader that replays the byte it peeked at, and a decoder over
// it would buffer it again (twice the time and eight times the memory of Unmarshal).
type bodyCodec struct{ runtime.StdJSONCodec }

var (
	errNull = errors.New("the request body must be a JSON object, not null")
	// ErrNullField is a field whose value is null, where it should be left out.
	ErrNullField = errors.New("a field is null")
	// errBOM: JSON must not begin with a byte order mark (RFC 8259), and the JSON an
	// editor saved so (Windows Notepad did) looks right: the detail says what is not.
	errBOM = errors.New("the request body is not valid JSON: it begins with a byte order mark")
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
	switch string(bytes.Trim(data, jsonSpace)) {
	case "":
		return io.EOF // no body: the generated server takes it as one left out
	case "null":
		return errNull
	}
	if bytes.HasPrefix(data, []byte("\uFEFF")) {
		return errBOM
	}
	return jsonv2.Unmarshal(data, v, jsonv2.RejectUnknownMembers(true), noNullFields)
}

// noNullFields refuses null wherever the body holds it; any other value it hands back
// (ErrUnsupported) to be decoded as usual. Called for every value, it adds about
// 0.4 µs to a mask's body (BenchmarkDecodeMaskRequest): functions for the types of the
// fields alone would cost a third of that, but a field of another type added to the
// spec would take null again without a word.
var noNullFields = jsonv2.WithUnmarshalers(jsonv2.UnmarshalFromFunc(func(dec *jsontext.Decoder, _ any) error {
	if dec.PeekKind() == 'n' {
		return ErrNullField
	}
	return errors.ErrUnsupported
}))
