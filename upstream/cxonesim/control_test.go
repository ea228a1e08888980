package cxonesim_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maskgate/maskgate/upstream/cxonesim"
)

const (
	clientID, clientSecret = "app", "app-secret"
	keyID, keySecret       = "key", "key-secret"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(cxonesim.New(cxonesim.Options{ClientID: clientID, ClientSecret: clientSecret,
		AccessKeyID: keyID, AccessKeySecret: keySecret}))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, target, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// statusAndRetryAfter POSTs to target with token and returns the answer's status and
// Retry-After, separated by a space.
func statusAndRetryAfter(t *testing.T, target, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, target, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return strconv.Itoa(resp.StatusCode) + " " + resp.Header.Get("Retry-After")
}

// tokenAnswer is the token endpoint's answer.
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	IDToken      string `json:"id_token"`
}

var passwordGrant = url.Values{"grant_type": {"password"}, "username": {keyID}, "password": {keySecret}}

// grant asks the token endpoint for a token with form, as the application.
func grant(t *testing.T, srv *httptest.Server, form url.Values) (int, tokenAnswer) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+cxonesim.TokenPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans tokenAnswer
	_ = json.NewDecoder(resp.Body).Decode(&ans)
	return resp.StatusCode, ans
}

func token(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	status, ans := grant(t, srv, passwordGrant)
	if status != 200 || ans.ExpiresIn != 3600 || ans.IDToken == "" {
		t.Fatalf("token answer %d %+v", status, ans)
	}
	return ans.AccessToken
}

// The token endpoint and discovery as CXone has them: an access key's secret is
// checked, a refresh token is good for one refresh, an access token for its lifetime,
// and the discovery document is the token's tenant's only.
func TestTokensAndDiscoveryAsCXoneHasThem(t *testing.T) {
	srv := httptest.NewServer(cxonesim.New(cxonesim.Options{ClientID: clientID, ClientSecret: clientSecret,
		AccessKeyID: keyID, AccessKeySecret: keySecret, TokenTTL: time.Second}))
	defer srv.Close()
	if status, _ := grant(t, srv, url.Values{"grant_type": {"password"}, "username": {keyID}, "password": {"wrong"}}); status != http.StatusBadRequest {
		t.Errorf("password grant with another secret = %d; want 400", status)
	}
	status, first := grant(t, srv, passwordGrant)
	if status != http.StatusOK || first.ExpiresIn != 1 {
		t.Fatalf("password grant = %d %+v; want 200, expiring in TokenTTL's 1 s", status, first)
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}}
	if status, _ := grant(t, srv, refresh); status != http.StatusOK {
		t.Errorf("refresh = %d; want 200", status)
	}
	if status, _ := grant(t, srv, refresh); status != http.StatusBadRequest {
		t.Errorf("the same refresh token again = %d; want 400", status)
	}

	for _, c := range []struct {
		tenant string
		want   int
	}{{"tenant-sim", http.StatusOK}, {"another", http.StatusNotFound}} {
		if status, doc := do(t, "GET", srv.URL+cxonesim.DiscoveryPath+"?tenantId="+c.tenant, "", ""); status != c.want || (status == http.StatusOK) != (doc["api_endpoint"] == srv.URL) {
			t.Errorf("discovery for tenant %s = %d %v; want %d", c.tenant, status, doc, c.want)
		}
	}

	mask := srv.URL + "/interaction-recording-management-service/v1/interactions/mask?userId=5"
	if status, _ := do(t, "POST", mask, first.AccessToken, ""); status != http.StatusNotFound {
		t.Fatalf("mask with a fresh token = %d; want 404 (no call)", status)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if status, _ := do(t, "POST", mask, first.AccessToken, ""); status == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a token of 1 s still accepted 10 s later")
		}
	}
}

func TestControlAPIDrivesCallsAndTimelines(t *testing.T) {
	srv := newServer(t)
	tok := token(t, srv)
	api := srv.URL + "/interaction-recording-management-service/v1/interactions/"

	if status, _ := do(t, "POST", api+"mask?userId=5", tok, ""); status != 404 {
		t.Fatalf("mask without a call = %d; want 404", status)
	}
	status, call := do(t, "POST", srv.URL+"/sim/agents/5/calls", "", `{"recorded":true}`)
	if status != 201 || call["callId"] == "" {
		t.Fatalf("start call = %d %v", status, call)
	}
	callURL := srv.URL + "/sim/calls/" + call["callId"].(string)
	if status, _ := do(t, "POST", api+"mask?userId=5", "", ""); status != 401 {
		t.Fatalf("mask without a token = %d; want 401", status)
	}
	if status, _ := do(t, "POST", api+"mask?userId=5", tok, ""); status != 200 {
		t.Fatalf("mask = %d; want 200", status)
	}
	if _, rs := do(t, "GET", api+"get-recording-status?userId=5", tok, ""); rs["statusReason"] != "Mask" || rs["recordingStatusToAgent"] != "Stopped" {
		t.Fatalf("recording status while masked = %v", rs)
	}
	if status, _ := do(t, "POST", api+"unmask?userId=5", tok, ""); status != 200 {
		t.Fatalf("unmask = %d; want 200", status)
	}
	if status, _ := do(t, "DELETE", callURL, "", ""); status != 204 {
		t.Fatalf("end call = %d; want 204", status)
	}
	if status, _ := do(t, "DELETE", callURL, "", ""); status != 404 {
		t.Fatalf("end the ended call = %d; want 404", status)
	}
	_, got := do(t, "GET", callURL, "", "")
	var kinds []string
	for _, e := range got["timeline"].([]any) {
		kinds = append(kinds, e.(map[string]any)["kind"].(string))
	}
	if strings.Join(kinds, ",") != "started,masked,unmasked,ended" {
		t.Fatalf("timeline = %v", kinds)
	}
	// Each span runs between the events that open and close it: the recording stops
	// at the mask and at the call's end, the mask at the unmask.
	at := func(i int) any { return got["timeline"].([]any)[i].(map[string]any)["at"] }
	for name, want := range map[string][][2]any{
		"recordedSpans": {{at(0), at(1)}, {at(2), at(3)}},
		"maskedSpans":   {{at(1), at(2)}},
	} {
		var spans [][2]any
		for _, span := range got[name].([]any) {
			spans = append(spans, [2]any{span.(map[string]any)["from"], span.(map[string]any)["to"]})
		}
		if !slices.Equal(spans, want) {
			t.Errorf("%s = %v; want %v, from and to at the timeline's events", name, spans, want)
		}
	}
	_, reqs := do(t, "GET", srv.URL+"/sim/requests", "", "")
	if n := len(reqs["requests"].([]any)); n != 5 {
		t.Errorf("recorded requests = %d; want 5", n)
	}
}

// TestMaskAndUnmaskActOnTheLatestCall: a mask applies to the call the agent joined last,
// as CXone documents (design §1), and in the simulator an unmask does too, so an unmask
// after the agent joined another call leaves the first one masked (README, Its limits).
func TestMaskAndUnmaskActOnTheLatestCall(t *testing.T) {
	srv := newServer(t)
	tok := token(t, srv)
	api := srv.URL + "/interaction-recording-management-service/v1/interactions/"
	masked := func(call map[string]any) bool {
		_, got := do(t, "GET", srv.URL+"/sim/calls/"+call["callId"].(string), "", "")
		return got["masked"] == true
	}
	_, first := do(t, "POST", srv.URL+"/sim/agents/5/calls", "", `{"recorded":true}`)
	if status, _ := do(t, "POST", api+"mask?userId=5", tok, ""); status != 200 || !masked(first) {
		t.Fatalf("mask = %d, first call masked %v; want 200, masked", status, masked(first))
	}
	_, second := do(t, "POST", srv.URL+"/sim/agents/5/calls", "", `{"recorded":true}`)
	if status, _ := do(t, "POST", api+"unmask?userId=5", tok, ""); status != 200 {
		t.Fatalf("unmask = %d; want 200", status)
	}
	if !masked(first) || masked(second) {
		t.Errorf("after the unmask: first call masked %v, second %v; want the first still masked, the second not", masked(first), masked(second))
	}
}

func TestControlAPIFaultsAndBehaviour(t *testing.T) {
	srv := newServer(t)
	tok := token(t, srv)
	mask := srv.URL + "/interaction-recording-management-service/v1/interactions/mask?userId=5"
	do(t, "POST", srv.URL+"/sim/agents/5/calls", "", "")

	do(t, "PUT", srv.URL+"/sim/agents/5/behaviour", "", `{"lock":1}`)
	do(t, "PUT", srv.URL+"/sim/faults", "", `{"retryAfter":2}`)
	if got := statusAndRetryAfter(t, mask, tok); got != "425 2" {
		t.Errorf("locked mask = %q (status, Retry-After); want 425 with the faults' Retry-After", got)
	}
	do(t, "PUT", srv.URL+"/sim/faults", "", `{}`)
	if status, _ := do(t, "POST", mask, tok, ""); status != 200 {
		t.Errorf("mask after the lock = %d; want 200", status)
	}
	// An asynchronous unmask is answered 202 and locks the interaction until it is done.
	do(t, "PUT", srv.URL+"/sim/agents/5/behaviour", "", `{"asyncMs":60000}`)
	unmask := strings.Replace(mask, "/mask?", "/unmask?", 1)
	if status, _ := do(t, "POST", unmask, tok, ""); status != 202 {
		t.Errorf("asynchronous unmask = %d; want 202", status)
	}
	if status, _ := do(t, "POST", mask, tok, ""); status != 425 {
		t.Errorf("mask while the unmask is under way = %d; want 425", status)
	}
	do(t, "POST", srv.URL+"/sim/reset", "", "")
	tok = token(t, srv)
	do(t, "POST", srv.URL+"/sim/agents/5/calls", "", "")
	do(t, "POST", mask, tok, "")
	// A CXone that loses what it accepts: 202 each time, no lock, nothing carried out.
	do(t, "PUT", srv.URL+"/sim/agents/5/behaviour", "", `{"lose":true}`)
	for range 2 {
		if status, _ := do(t, "POST", unmask, tok, ""); status != 202 {
			t.Errorf("lost unmask = %d; want 202, and no 425 after it", status)
		}
	}
	if _, st := do(t, "GET", srv.URL+"/interaction-recording-management-service/v1/interactions/get-recording-status?userId=5", tok, ""); st["statusReason"] != "Mask" {
		t.Errorf("recording status after two lost unmasks = %v; want still masked", st)
	}
	do(t, "PUT", srv.URL+"/sim/agents/5/behaviour", "", `{}`)
	do(t, "PUT", srv.URL+"/sim/faults", "", `{"errorRate":1,"errorStatus":502}`)
	if status, _ := do(t, "POST", mask, tok, ""); status != 502 {
		t.Errorf("mask with errorRate 1 = %d; want 502", status)
	}
	// Retry-After comes with the statuses that HTTP gives it to; 503 is the default.
	for faults, want := range map[string]string{`{"errorRate":1,"retryAfter":3}`: "503 3", `{"errorRate":1,"errorStatus":500,"retryAfter":3}`: "500 "} {
		do(t, "PUT", srv.URL+"/sim/faults", "", faults)
		if got := statusAndRetryAfter(t, mask, tok); got != want {
			t.Errorf("mask with faults %s = %q (status, Retry-After); want %q", faults, got, want)
		}
	}
	// A key without the masking permission may still read the recording's status.
	do(t, "PUT", srv.URL+"/sim/faults", "", `{"denyMasking":true}`)
	if status, _ := do(t, "POST", mask, tok, ""); status != 403 {
		t.Errorf("mask with denyMasking = %d; want 403", status)
	}
	if status, _ := do(t, "GET", strings.Replace(mask, "/mask?", "/get-recording-status?", 1), tok, ""); status != 200 {
		t.Errorf("recording status with denyMasking = %d; want 200", status)
	}
	if status, _ := do(t, "PUT", srv.URL+"/sim/faults", "", `{"bogus":1}`); status != 400 {
		t.Errorf("unknown fault field = %d; want 400", status)
	}
	do(t, "POST", srv.URL+"/sim/tokens/revoke", "", "")
	do(t, "PUT", srv.URL+"/sim/faults", "", `{}`)
	if status, _ := do(t, "POST", mask, tok, ""); status != 401 {
		t.Errorf("mask with a revoked token = %d; want 401", status)
	}
	do(t, "POST", srv.URL+"/sim/reset", "", "")
	if status, _ := do(t, "POST", mask, token(t, srv), ""); status != 404 {
		t.Errorf("mask after reset = %d; want 404 (no calls)", status)
	}
}

// An asynchronous mask that CXone would carry out after the agent's call ended changes
// nothing: an ended call's recording is not masked after the fact, so a test of a
// hang-up during an asynchronous mask sees the call as CXone leaves it.
func TestAsynchronousMaskOfACallEndedMeanwhileChangesNothing(t *testing.T) {
	srv := newServer(t)
	tok := token(t, srv)
	api := srv.URL + "/interaction-recording-management-service/v1/interactions/"
	_, call := do(t, "POST", srv.URL+"/sim/agents/5/calls", "", "")
	_, later := do(t, "POST", srv.URL+"/sim/agents/6/calls", "", "")
	do(t, "PUT", srv.URL+"/sim/agents/5/behaviour", "", `{"asyncMs":50}`)
	do(t, "PUT", srv.URL+"/sim/agents/6/behaviour", "", `{"asyncMs":500}`)
	if status, _ := do(t, "POST", api+"mask?userId=5", tok, ""); status != http.StatusAccepted {
		t.Fatalf("asynchronous mask = %d; want 202", status)
	}
	if status, _ := do(t, "DELETE", srv.URL+"/sim/calls/"+fmt.Sprint(call["callId"]), "", ""); status != http.StatusNoContent {
		t.Fatalf("end call = %d; want 204", status)
	}
	// Agent 6's mask is due 450 ms after agent 5's: once it is carried out, agent 5's
	// has had its turn.
	do(t, "POST", api+"mask?userId=6", tok, "")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, got := do(t, "GET", srv.URL+"/sim/calls/"+fmt.Sprint(later["callId"]), "", ""); got["masked"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a mask due in 500 ms not carried out 10 s later")
		}
	}
	_, got := do(t, "GET", srv.URL+"/sim/calls/"+fmt.Sprint(call["callId"]), "", "")
	if got["masked"] != false || len(got["timeline"].([]any)) != 2 {
		t.Errorf("call ended before its asynchronous mask = %v; want unmasked, its timeline started and ended", got)
	}
}

// The control API's other settings, as README's table gives them: a call joined
// unrecorded, an agent whose requests hang, and the count of tokens issued.
func TestControlAPICallsHangsAndTokenCount(t *testing.T) {
	srv := newServer(t)
	tok := token(t, srv)
	api := srv.URL + "/interaction-recording-management-service/v1/interactions/"
	for body, want := range map[string]string{"": "Recording", `{"recorded":false}`: "NoRecording"} {
		_, call := do(t, "POST", srv.URL+"/sim/agents/6/calls", "", body)
		if _, st := do(t, "GET", api+"get-recording-status?userId=6", tok, ""); st["recordingStatusToAgent"] != want {
			t.Errorf("recording status of a call joined with %q = %v; want %s", body, st, want)
		}
		_, got := do(t, "GET", srv.URL+"/sim/calls/"+fmt.Sprint(call["callId"]), "", "")
		if spans, _ := got["recordedSpans"].([]any); (len(spans) == 1) != (want == "Recording") {
			t.Errorf("recorded spans of a call joined with %q = %v", body, got["recordedSpans"])
		}
	}

	do(t, "PUT", srv.URL+"/sim/agents/6/behaviour", "", `{"hang":true}`)
	hurried := &http.Client{Timeout: 200 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodPost, api+"mask?userId=6", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := hurried.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("mask of a hanging agent = %d; want no answer", resp.StatusCode)
	}
	if status, _ := do(t, "POST", api+"mask?userId=7", tok, ""); status != http.StatusNotFound {
		t.Errorf("mask of another agent while one hangs = %d; want it answered (404, no call)", status)
	}

	token(t, srv)
	if _, reqs := do(t, "GET", srv.URL+"/sim/requests", "", ""); reqs["tokensIssued"] != float64(2) {
		t.Errorf("/sim/requests = %v; want tokensIssued 2", reqs)
	}
}

// TestRequestLogKeepsTheLatest: with MaxRequests the log stays bounded, keeps the
// newest requests and drops the oldest.
func TestRequestLogKeepsTheLatest(t *testing.T) {
	sim := cxonesim.New(cxonesim.Options{ClientID: clientID, ClientSecret: clientSecret,
		AccessKeyID: keyID, AccessKeySecret: keySecret, MaxRequests: 10})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	tok := token(t, srv)
	for i := range 25 {
		do(t, http.MethodPost, srv.URL+"/interaction-recording-management-service/v1/interactions/mask?userId=u"+strconv.Itoa(i), tok, "")
	}
	got := sim.Requests()
	if len(got) == 0 || len(got) > 10 {
		t.Fatalf("the log holds %d requests; want 1 to 10", len(got))
	}
	for i, r := range got { // the latest len(got) of the 25, oldest first
		if want := "u" + strconv.Itoa(25-len(got)+i); r.UserID != want {
			t.Errorf("request %d of the log is for %s; want %s", i, r.UserID, want)
		}
	}
}
