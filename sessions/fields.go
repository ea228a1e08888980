package sessions

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// How a session hash becomes a Session: the fields the scripts read, in one order on
// both sides, and their decoding.

// The fields of a session hash that make a Session, in the order in which the scripts'
// session() returns them and decodeSession reads them.
const (
	fieldID = iota
	fieldUser
	fieldState
	fieldMaskedAt
	fieldExpiresAt
	fieldMaskedBy
	fieldReason
	fieldUnmaskedAt
	fieldUnmaskedBy
	fieldCloseReason
	fieldSupersededID // last: a record of a version before it (a joined request's answer) has the others
	sessionFieldCount
)

var sessionFields = [sessionFieldCount]string{
	fieldID: "id", fieldUser: "user", fieldState: "state", fieldMaskedAt: "maskedAt",
	fieldExpiresAt: "expiresAt", fieldMaskedBy: "maskedBy", fieldReason: "reason",
	fieldUnmaskedAt: "unmaskedAt", fieldUnmaskedBy: "unmaskedBy", fieldCloseReason: "closeReason",
	fieldSupersededID: "supersededId",
}

// sessionSrc defines, for the scripts that read or answer with a session (Go prepends
// it to them), from sessionFields:
//
//	session(h, ...)       one HMGET of sessionFields, in their order, then of the fields
//	                      named after h (false for a missing one): what a script answers
//	read_session(h, ...)  the same HMGET, as a table by field name, then the values of
//	                      the fields named after h: one read for the lock and the session
//	as_fields(first, s)   first, then such a table's fields as session() answers
//	                      them: a script's answer, built at its final size
//
// Less than half of what HGETALL answers (no field names, no lock fields), and no map to
// build on this side.
var sessionSrc = func() string {
	byName, fields := make([]string, len(sessionFields)), make([]string, len(sessionFields))
	for i, f := range sessionFields {
		byName[i] = fmt.Sprintf("%s = v[%d]", f, i+1)
		fields[i] = fmt.Sprintf("s.%s or false", f)
	}
	return "local function session(h, ...)\n" +
		"  return redis.call('HMGET', h, '" + strings.Join(sessionFields[:], "', '") + "', ...)\n" +
		"end\n" +
		"local function read_session(h, ...)\n" +
		"  local v = session(h, ...)\n" +
		"  return {" + strings.Join(byName, ", ") + "}, unpack(v, " + strconv.Itoa(len(sessionFields)+1) + ")\n" +
		"end\n" +
		"local function as_fields(first, s)\n" +
		"  return {first, " + strings.Join(fields, ", ") + "}\n" +
		"end\n"
}()

// strs is a reply's values as strings, "" for a nil (a missing field).
func strs(vals []any) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i], _ = v.(string)
	}
	return out
}

// decodeSession reads a session from its fields in sessionFields' order ("" for a
// missing one), as session() and get return them. Only a forced unmask's session has
// no maskedAt (unmask_begin.lua): the gateway never saw its mask.
func decodeSession(f []string) (Session, error) {
	if len(f) < fieldSupersededID {
		return Session{}, fmt.Errorf("%w: session record of %d fields", ErrStoreUnavailable, len(f))
	}
	sess := Session{
		ID:          f[fieldID],
		UserID:      f[fieldUser],
		State:       State(f[fieldState]),
		MaskedBy:    f[fieldMaskedBy],
		Reason:      f[fieldReason],
		UnmaskedBy:  f[fieldUnmaskedBy],
		CloseReason: CloseReason(f[fieldCloseReason]),
		Forced:      f[fieldMaskedAt] == "",
	}
	if len(f) > fieldSupersededID {
		sess.SupersededID = f[fieldSupersededID]
	}
	var err error
	if sess.MaskedAt, err = msTime(f[fieldMaskedAt]); err != nil {
		return Session{}, err
	}
	if sess.ExpiresAt, err = msTime(f[fieldExpiresAt]); err != nil {
		return Session{}, err
	}
	if sess.UnmaskedAt, err = msTime(f[fieldUnmaskedAt]); err != nil {
		return Session{}, err
	}
	return sess, nil
}

func msDuration(v string) (time.Duration, error) {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bad duration %q", ErrStoreUnavailable, v)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func msTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: bad timestamp %q", ErrStoreUnavailable, v)
	}
	return time.UnixMilli(ms).UTC(), nil
}
