package handlers_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/internal/testkit"
)

// An unmask whose sessionId is null (a CRM that lost the id it kept) is refused, not
// taken for one without the precondition: that would unmask whatever session is open,
// a newer mask too.
func TestUnmaskWithANullSessionIdIsRefused(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), ""); r.status != 200 {
		t.Fatalf("mask = %d %s", r.status, r.body)
	}
	r := g.do("POST", "/v1/agents/a1/unmask", g.all(), `{"sessionId":null}`)
	if r.status != 400 || r.json(t)["detail"] != "field sessionId is null: give it a value, or leave it out" {
		t.Errorf("unmask with a null sessionId = %d %s; want 400 naming the field", r.status, r.body)
	}
	if r := g.do("GET", "/v1/agents/a1/mask", g.all(), ""); r.status != 200 || r.json(t)["state"] != "masked" {
		t.Errorf("after the refused unmask: %d %s; want the session still masked", r.status, r.body)
	}
	if n := len(g.sim.Requests()); n != 1 {
		t.Errorf("%d requests reached CXone; want the mask's only", n)
	}
}

// A compressed body is 415 with the coding the gateway reads, not 400 "not valid
// JSON" for JSON that is right once uncompressed.
func TestACompressedBodyIs415(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"reason":"payment"}`))
	zw.Close()
	for _, coding := range []string{"gzip", "identity, gzip", "br"} {
		r := g.do("POST", "/v1/agents/a1/mask", g.all(), gz.String(), "Content-Encoding", coding)
		if r.status != 415 || r.json(t)["code"] != "unsupported_content_encoding" || r.header.Get("Accept-Encoding") != "identity" {
			t.Errorf("mask with Content-Encoding %s = %d %v %s; want 415 unsupported_content_encoding with Accept-Encoding: identity", coding, r.status, r.header, r.body)
		}
	}
	g.untouched("compressed bodies")
	// identity is no coding; nor does a header without a body change anything.
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), `{"reason":"payment"}`, "Content-Encoding", "Identity"); r.status != 200 {
		t.Errorf("mask with Content-Encoding: Identity = %d %s; want 200", r.status, r.body)
	}
	if r := g.do("POST", "/v1/agents/a1/unmask", g.all(), "", "Content-Encoding", "gzip"); r.status != 200 {
		t.Errorf("unmask without a body, with Content-Encoding: gzip = %d %s; want 200", r.status, r.body)
	}
}

// A body may end in white space, as JSON encoders end theirs with a newline; only
// something else after the value is refused (TestRejectedRequestsNeverReachRedisOrCXone).
func TestBodyEndingInWhiteSpaceIsRead(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	r := g.do("POST", "/v1/agents/a1/mask", g.all(), "{\"reason\":\"payment\"}\n \r\n\t")
	if r.status != 200 || r.json(t)["reason"] != "payment" {
		t.Errorf("mask = %d %s; want 200 with the body's reason", r.status, r.body)
	}
}

// A body refused says what is wrong in the caller's terms (JSON's types, the field's
// name), never echoing what the caller sent.
func TestBodyProblemsSayWhatIsWrong(t *testing.T) {
	g := newGateway(t)
	for body, detail := range map[string]string{
		`{"ttlSeconds":"30"}`:   "field ttlSeconds must be a JSON integer",
		`{"ttlSeconds":1e2}`:    "field ttlSeconds must be a JSON integer",
		`{"ttlSeconds":100.5}`:  "field ttlSeconds must be a JSON integer",
		`{"reason":5}`:          "field reason must be a JSON string",
		`{"reason":`:            "the request body is not valid JSON",
		`[5]`:                   "the request body must be a JSON object",
		`null`:                  "the request body must be a JSON object, not null",
		`{"ttlSeconds":0}`:      "ttlSeconds must be between 1 and 7200",
		`{"ttl":31}`:            `unknown field "ttl"`,
		`{"reason":"x"}{"a":7}`: "the request body is not valid JSON",
		// White space to Go (bytes.TrimSpace), not to JSON: not a body left out.
		"\f": "the request body is not valid JSON",
		// Each field once, spelt as the spec spells it: a proxy, a log reader or
		// the caller's own check that reads the first of two, or the exact name, must
		// not see another mask than the gateway opens (60 s there, 2 h here).
		`{"ttlSeconds":60,"ttlSeconds":7200}`: "field ttlSeconds is sent more than once",
		`{"ttlSeconds":60,"TtlSeconds":7200}`: `unknown field "TtlSeconds"`,
		`{"TTLSECONDS":60}`:                   `unknown field "TTLSECONDS"`,
		`{"ttlſeconds":60}`:                   `unknown field "ttlſeconds"`,
		// A name is echoed, into the answer and the access line, only when short.
		`{"` + strings.Repeat("x", 65) + `":1}`: "unknown field (a name of 65 bytes)",
		"{\"reason\":\"caf\xe9\"}":              "the request body is not valid JSON",
		// Saved by an editor that begins UTF-8 with a byte order mark (Windows
		// Notepad did): JSON looks right in it, so the detail says what is not.
		"\xef\xbb\xbf{\"reason\":\"x\"}": "the request body is not valid JSON: it begins with a byte order mark",
		`{"reason":"\ud800"}`:            "the request body is not valid JSON",
		// No field of the spec's is nullable: null is not the field left out.
		`{"reason":null}`:                  "field reason is null: give it a value, or leave it out",
		`{"reason":"x","ttlSeconds":null}`: "field ttlSeconds is null: give it a value, or leave it out",
	} {
		r := g.do("POST", "/v1/agents/a1/mask", g.all(), body)
		if r.status != 400 || r.json(t)["detail"] != detail {
			t.Errorf("%s: %d %s; want 400 %q", body, r.status, r.body, detail)
		}
	}
	g.untouched("bad bodies")
}

// A body is read as JSON whatever its Content-Type (README, API): curl -d labels it a
// form, and README's examples send it so. A form's body is still not JSON.
func TestBodyIsReadAsJSONWhateverItsContentType(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), `{"reason":"payment"}`, form...); r.status != 200 || r.json(t)["reason"] != "payment" {
		t.Errorf("mask labelled a form = %d %s; want 200 with the body's reason", r.status, r.body)
	}
	if r := g.do("POST", "/v1/agents/a2/mask", g.all(), "reason=payment", form...); r.status != 400 || r.json(t)["code"] != "invalid_body" {
		t.Errorf("mask with a form's body = %d %s; want 400 invalid_body", r.status, r.body)
	}
}

// TestRejectedRequestsNeverReachRedisOrCXone covers the 4xx answers that come before
// any work: authentication, scopes, the agent binding and input validation.
func TestRejectedRequestsNeverReachRedisOrCXone(t *testing.T) {
	long := strings.Repeat("x", 129)
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		token  func(g *gateway) string
		header []string
		status int
		code   string
	}{
		{"no token", "POST", "/v1/agents/a1/mask", "", func(*gateway) string { return "" }, nil, 401, "unauthorized"},
		{"garbage token", "POST", "/v1/agents/a1/mask", "", func(*gateway) string { return "garbage" }, nil, 401, "unauthorized"},
		{"basic auth", "POST", "/v1/agents/a1/mask", "", func(*gateway) string { return "" }, []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401, "unauthorized"},
		{"alg none", "POST", "/v1/agents/a1/mask", "", func(*gateway) string { return unsigned() }, nil, 401, "unauthorized"},
		{"expired", "POST", "/v1/agents/a1/mask", "", func(g *gateway) string {
			return g.token("recordings:mask", jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()})
		}, nil, 401, "unauthorized"},
		{"wrong audience", "POST", "/v1/agents/a1/mask", "", func(g *gateway) string {
			return g.token("recordings:mask", jwt.MapClaims{"aud": "other"})
		}, nil, 401, "unauthorized"},
		{"mask without recordings:mask", "POST", "/v1/agents/a1/mask", "", func(g *gateway) string { return g.token("recordings:read recordings:unmask", nil) }, nil, 403, "insufficient_scope"},
		{"unmask without recordings:unmask", "POST", "/v1/agents/a1/unmask", "", func(g *gateway) string { return g.token("recordings:mask", nil) }, nil, 403, "insufficient_scope"},
		{"get without recordings:read", "GET", "/v1/agents/a1/mask", "", func(g *gateway) string { return g.token("recordings:mask", nil) }, nil, 403, "insufficient_scope"},
		{"list without recordings:read", "GET", "/v1/masks", "", func(g *gateway) string { return g.token("recordings:mask", nil) }, nil, 403, "insufficient_scope"},
		{"agent token on another agent", "POST", "/v1/agents/a1/mask", "", func(g *gateway) string {
			return g.token("recordings:mask", jwt.MapClaims{"agent_id": "a2"})
		}, nil, 403, "agent_forbidden"},
		{"agent token unmasking another agent", "POST", "/v1/agents/a1/unmask", "", func(g *gateway) string {
			return g.token("recordings:unmask", jwt.MapClaims{"agent_id": "a2"})
		}, nil, 403, "agent_forbidden"},
		{"agent token listing", "GET", "/v1/masks", "", func(g *gateway) string {
			return g.token("recordings:read", jwt.MapClaims{"agent_id": "a1"})
		}, nil, 403, "agent_forbidden"},
		{"user id with a space", "POST", "/v1/agents/a%20b/mask", "", (*gateway).all, nil, 400, "invalid_user_id"},
		{"user id with a star", "POST", "/v1/agents/a*b/mask", "", (*gateway).all, nil, 400, "invalid_user_id"},
		{"user id with braces", "GET", "/v1/agents/%7Bx%7D/mask", "", (*gateway).all, nil, 400, "invalid_user_id"},
		{"user id with an encoded slash", "POST", "/v1/agents/a%2Fb/unmask", "", (*gateway).all, nil, 400, "invalid_user_id"},
		{"empty user id", "POST", "/v1/agents//mask", "", (*gateway).all, nil, 400, "invalid_user_id"},
		{"empty user id, GET", "GET", "/v1/agents//mask", "", (*gateway).all, nil, 400, "invalid_user_id"},
		{"user id of 129 characters", "POST", "/v1/agents/" + long + "/mask", "", (*gateway).all, nil, 400, "invalid_user_id"},
		{"body not JSON", "POST", "/v1/agents/a1/mask", "reason=payment", (*gateway).all, nil, 400, "invalid_body"},
		{"body truncated", "POST", "/v1/agents/a1/mask", `{"reason":`, (*gateway).all, nil, 400, "invalid_body"},
		{"body an array", "POST", "/v1/agents/a1/mask", `[]`, (*gateway).all, nil, 400, "invalid_body"},
		{"body null", "POST", "/v1/agents/a1/mask", `null`, (*gateway).all, nil, 400, "invalid_body"},
		{"a card number in the reason", "POST", "/v1/agents/a1/mask", `{"reason":"card 4111 1111 1111 1111"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"two bodies", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":60}{"ttlSeconds":1}`, (*gateway).all, nil, 400, "invalid_body"},
		{"body with text after it", "POST", "/v1/agents/a1/unmask", `{} and more`, (*gateway).all, nil, 400, "invalid_body"},
		{"unknown field", "POST", "/v1/agents/a1/mask", `{"ttl":30}`, (*gateway).all, nil, 400, "invalid_body"},
		{"ttlSeconds a string", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":"30"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"ttlSeconds a fraction", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":1.5}`, (*gateway).all, nil, 400, "invalid_body"},
		{"ttlSeconds 0", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":0}`, (*gateway).all, nil, 400, "invalid_body"},
		{"ttlSeconds negative", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":-1}`, (*gateway).all, nil, 400, "invalid_body"},
		{"ttlSeconds over the max", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":7201}`, (*gateway).all, nil, 400, "invalid_body"},
		{"ttlSeconds overflowing", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":99999999999999999999}`, (*gateway).all, nil, 400, "invalid_body"},
		{"ttlSeconds twice", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":60,"ttlSeconds":7200}`, (*gateway).all, nil, 400, "invalid_body"},
		{"reason not UTF-8", "POST", "/v1/agents/a1/mask", "{\"reason\":\"\xff\"}", (*gateway).all, nil, 400, "invalid_body"},
		{"reason a number", "POST", "/v1/agents/a1/mask", `{"reason":5}`, (*gateway).all, nil, 400, "invalid_body"},
		{"reason of 201 characters", "POST", "/v1/agents/a1/mask", `{"reason":"` + strings.Repeat("r", 201) + `"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"unmask unknown field", "POST", "/v1/agents/a1/unmask", `{"session":"x"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"unmask sessionId twice", "POST", "/v1/agents/a1/unmask", `{"sessionId":"x","sessionId":"y"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"unmask sessionId in another case", "POST", "/v1/agents/a1/unmask", `{"SessionID":"x"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"unmask sessionId folded", "POST", "/v1/agents/a1/unmask", `{"ſessionId":"x"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"unmask empty sessionId", "POST", "/v1/agents/a1/unmask", `{"sessionId":""}`, (*gateway).all, nil, 400, "invalid_body"},
		{"unmask sessionId a number", "POST", "/v1/agents/a1/unmask", `{"sessionId":7}`, (*gateway).all, nil, 400, "invalid_body"},
		// No session's id could be these, and the audit line of a refused unmask would
		// carry them: an escape sequence for its reader's terminal, a line break, text
		// that is not ASCII, a card number in the wrong field.
		{"unmask sessionId with an escape sequence", "POST", "/v1/agents/a1/unmask", `{"sessionId":"\u001b[2J"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"unmask sessionId with a line break", "POST", "/v1/agents/a1/unmask", `{"sessionId":"x\n{\"audit\":true}"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"unmask sessionId not ASCII", "POST", "/v1/agents/a1/unmask", `{"sessionId":"séance"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"unmask sessionId holding a card number", "POST", "/v1/agents/a1/unmask", `{"sessionId":"4111-1111-1111-1111"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"body over 16 KiB", "POST", "/v1/agents/a1/mask", `{"reason":"` + strings.Repeat("r", 17<<10) + `"}`, (*gateway).all, nil, 413, "body_too_large"},
		{"limit 0", "GET", "/v1/masks?limit=0", "", (*gateway).all, nil, 400, "invalid_parameter"},
		{"limit 1001", "GET", "/v1/masks?limit=1001", "", (*gateway).all, nil, 400, "invalid_parameter"},
		{"limit not a number", "GET", "/v1/masks?limit=ten", "", (*gateway).all, nil, 400, "invalid_parameter"},
		{"cursor not ours", "GET", "/v1/masks?cursor=%25%25", "", (*gateway).all, nil, 400, "invalid_parameter"},
		{"verify not a boolean", "GET", "/v1/agents/a1/mask?verify=maybe", "", (*gateway).all, nil, 400, "invalid_parameter"},
		{"force not a boolean", "POST", "/v1/agents/a1/unmask?force=yes", "", (*gateway).all, nil, 400, "invalid_parameter"},
		{"limit sent twice", "GET", "/v1/masks?limit=1&limit=2", "", (*gateway).all, nil, 400, "invalid_parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t)
			g.sim.StartCall("a1", false, true)
			r := g.do(tt.method, tt.path, tt.token(g), tt.body, tt.header...)
			if r.status != tt.status || r.json(t)["code"] != tt.code {
				t.Fatalf("%s %s = %d %s; want %d %s", tt.method, tt.path, r.status, r.body, tt.status, tt.code)
			}
			if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", r.header.Get("WWW-Authenticate"))
			}
			g.untouched(tt.name)
		})
	}
}

// Two Authorization headers are refused whichever of them holds a valid token: a
// proxy in front that checks the other one must not let a request through on a token
// it never saw (RFC 6750's invalid_request, as a repeated Idempotency-Key is refused).
func TestTwoAuthorizationHeadersAreRefused(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	valid, other := "Bearer "+g.all(), "Bearer "+g.token("recordings:read", nil)
	for _, pair := range [][2]string{{valid, other}, {other, valid}, {valid, valid}} {
		r := g.do("POST", "/v1/agents/a1/mask", "", "", "Authorization", pair[0], "Authorization", pair[1])
		if r.status != 400 || r.json(t)["code"] != "invalid_parameter" || r.json(t)["detail"] != "the Authorization header must be sent once" {
			t.Errorf("two Authorization headers = %d %s; want 400 invalid_parameter", r.status, r.body)
		}
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="maskgate", error="invalid_request"` {
			t.Errorf("WWW-Authenticate = %q; want RFC 6750's invalid_request", got)
		}
	}
	g.untouched("two Authorization headers")
}

// A token whose header lists critical extensions ("crit") is refused, and the answer
// says why: RFC 7515 §4.1.11 has a recipient refuse a token that relies on an
// extension it does not support, and the gateway supports none.
func TestATokenWithCriticalExtensionsIsRefusedSayingWhy(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	tok := testkit.Token(t, jwt.SigningMethodHS256, secret, testkit.Claims(issuer, audience, "recordings:mask", nil),
		map[string]any{"crit": []string{"exp-bound"}, "exp-bound": true})
	r := g.do("POST", "/v1/agents/a1/mask", tok, "")
	if detail, _ := r.json(t)["detail"].(string); r.status != http.StatusUnauthorized || !strings.Contains(detail, "(crit)") {
		t.Fatalf("mask with a token listing crit = %d %s; want 401 saying the token has critical extensions", r.status, r.body)
	}
	g.untouched("a token listing crit")
}

// The scheme of an Authorization header is case-insensitive (RFC 9110 §11.1, which
// RFC 6750's Bearer follows): a client that sends "bearer" is let in as with "Bearer".
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	g := newGateway(t)
	for _, scheme := range []string{"bearer", "BEARER", "bEaReR"} {
		if r := g.do("GET", "/v1/masks", "", "", "Authorization", scheme+" "+g.all()); r.status != http.StatusOK {
			t.Errorf("a token sent as %q = %d %s; want 200", scheme, r.status, r.body)
		}
	}
}

// unsigned is an alg=none token with otherwise valid claims.
func unsigned() string {
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"iss": issuer, "aud": audience, "sub": "x", "scope": "recordings:mask", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	return tok
}

// A request line Go's HTTP server cannot parse (a malformed % escape in the path) is
// refused by that server before the gateway sees it, as README says: a plain-text 400
// that closes the connection, with no access line, and nothing read or written.
func TestUnparsableRequestLineIsRefusedByTheServer(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/agents/a%%zz1/mask HTTP/1.1\r\nHost: maskgate\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n", g.all())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || !resp.Close {
		t.Errorf("answer = %d %v (close %v); want net/http's plain-text 400 that closes", resp.StatusCode, resp.Header, resp.Close)
	}
	if lines := testkit.LogLines(t, g.logs.String()); len(lines) != 0 {
		t.Errorf("log lines = %v; want none", lines)
	}
	g.untouched("an unparsable request line")
}

// A body that cannot be read (a broken chunk) is 400 invalid_body and changes nothing,
// with an Idempotency-Key or without: it is not too large, and its key stays free.
func TestBodyThatCannotBeReadIs400(t *testing.T) {
	for _, key := range []string{"", "Idempotency-Key: k-broken\r\n"} {
		g := newGateway(t)
		g.sim.StartCall("a1", false, true)
		conn, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /v1/agents/a1/mask HTTP/1.1\r\nHost: maskgate\r\nAuthorization: Bearer %s\r\n%sTransfer-Encoding: chunked\r\n\r\n5\r\n{\"rea\r\nzz\r\n", g.all(), key)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		var p struct{ Code string }
		if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &p) != nil || p.Code != "invalid_body" {
			t.Errorf("broken chunk (key %q) = %d %s; want 400 invalid_body", key, resp.StatusCode, body)
		}
		g.untouched("a body that cannot be read")
	}
}

// A query parameter the operation does not take is refused, not ignored: the caller
// meant something by it (README, How it behaves where the contract is silent).
func TestUnknownQueryParametersAreRefused(t *testing.T) {
	g := newGateway(t)
	admin := g.token("recordings:mask recordings:unmask recordings:read recordings:admin", nil)
	for _, tc := range []struct{ method, path, detail string }{
		// The ttl belongs in the body: ignored, it would be a mask of the
		// default 15 minutes for a caller that asked for 5 s.
		{"POST", "/v1/agents/a1/mask?ttlSeconds=5", `unknown query parameter "ttlSeconds": this operation takes none`},
		{"POST", "/v1/agents/a1/unmask?Force=true", `unknown query parameter "Force": this operation takes force`},
		{"GET", "/v1/agents/a1/mask?verfy=true", `unknown query parameter "verfy": this operation takes verify`},
		{"GET", "/v1/masks?Limit=5", `unknown query parameter "Limit": this operation takes limit, cursor`},
		{"GET", "/v1/masks?limit=5&" + strings.Repeat("x", 65) + "=1", "unknown query parameter (a name of 65 bytes): this operation takes limit, cursor"},
		// Pairs that url.Values would drop without a word.
		{"POST", "/v1/agents/a1/unmask?force=%zz", "the query string is malformed"},
		{"POST", "/v1/agents/a1/unmask?x=1;force=true", "the query string is malformed"},
		// A boolean is true or false: the binding would also take strconv.ParseBool's
		// 1, t, T, TRUE and True, which a proxy in front reading force=true would not.
		{"POST", "/v1/agents/a1/unmask?force=1", "parameter force must be true or false"},
		{"POST", "/v1/agents/a1/unmask?force=TRUE", "parameter force must be true or false"},
		{"GET", "/v1/agents/a1/mask?verify=t", "parameter verify must be true or false"},
		{"GET", "/v1/agents/a1/mask?verify=False", "parameter verify must be true or false"},
		{"POST", "/v1/agents/a1/unmask?force=yes", "parameter force must be true or false"},
		// A parameter sent twice: which of the two a proxy in front read, nobody can say.
		{"GET", "/v1/masks?limit=1&limit=2", "parameter limit must be sent once"},
		{"GET", "/v1/agents/a1/mask?verify=true&verify=true", "parameter verify must be sent once"},
		{"POST", "/v1/agents/a1/unmask?force=false&force=true", "parameter force must be sent once"},
	} {
		r := g.do(tc.method, tc.path, admin, "")
		if r.status != 400 || r.json(t)["code"] != "invalid_parameter" || r.json(t)["detail"] != tc.detail {
			t.Errorf("%s %s = %d %s; want 400 invalid_parameter %q", tc.method, tc.path, r.status, r.body, tc.detail)
		}
	}
	if r := g.do("GET", "/readyz?exclude=cxone&probe=1", "", ""); r.status != 400 || r.json(t)["detail"] != `unknown query parameter "probe": this operation takes exclude` {
		t.Errorf("readyz with an unknown parameter = %d %s; want 400 naming it", r.status, r.body)
	}
	g.untouched("unknown query parameters")

	// The parameters an operation takes still pass, and liveness answers whatever
	// its probe sends.
	for path, want := range map[string]int{
		"/v1/masks?limit=5":               200,
		"/v1/agents/a1/mask?verify=false": 404, // not_masked: served, a1 has no session
		"/v1/agents/a1/mask?verify=true":  404, // likewise, with CXone's view
		"/v1/masks?":                      200,
		"/healthz?probe=1":                200,
	} {
		if r := g.do("GET", path, admin, ""); r.status != want || (want == 404 && r.json(t)["code"] != "not_masked") {
			t.Errorf("GET %s = %d %s; want %d", path, r.status, r.body, want)
		}
	}
}
