package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzCXoneAnswers has a fake CXone answer the token request and the mask with fuzzed
// statuses, bodies and Retry-After headers: the client never panics, a failure is
// always one of the documented kinds, and success only comes with 200 or 202.
func FuzzCXoneAnswers(f *testing.F) {
	idToken, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"tenantId": "t", "iss": "x"}).SignedString([]byte("k"))
	good := `{"access_token":"a","expires_in":3600,"refresh_token":"r","id_token":"` + idToken + `"}`
	f.Add(200, good, 200, "", "")
	f.Add(200, good, 425, "", "1")
	f.Add(200, good, 429, "", "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(400, `{"error":"invalid_grant","error_description":"no"}`, 200, "", "")
	f.Add(200, `{"access_token":"a","expires_in":-5}`, 200, "", "")
	f.Add(200, `not json`, 200, "", "")
	f.Add(200, good, 302, "", "")
	f.Add(200, good, 200, `{"contactId":5}`, "-1")
	f.Fuzz(func(t *testing.T, tokenStatus int, tokenBody string, apiStatus int, apiBody, retryAfter string) {
		if tokenStatus < 100 || tokenStatus > 599 || apiStatus < 100 || apiStatus > 599 {
			return
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/auth/token" {
				w.WriteHeader(tokenStatus)
				w.Write([]byte(tokenBody))
				return
			}
			if retryAfter != "" {
				w.Header()["Retry-After"] = []string{retryAfter}
			}
			w.WriteHeader(apiStatus)
			w.Write([]byte(apiBody))
		}))
		defer srv.Close()
		c := New(Config{AuthURL: srv.URL + "/auth/token", BaseURL: srv.URL, Timeout: time.Second, MaxAttempts: 2,
			BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		res, err := c.Mask(ctx, "7")
		if err == nil {
			if res.Status != 200 && res.Status != 202 {
				t.Fatalf("success with status %d", res.Status)
			}
			return
		}
		var ue *Error
		if !errors.As(err, &ue) {
			t.Fatalf("error %v is not an *upstream.Error", err)
		}
		if !errors.Is(err, ErrNoActiveCall) && !errors.Is(err, ErrInternalCall) && !errors.Is(err, ErrRefused) &&
			!errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrTimeout) {
			t.Fatalf("error %v is of no documented kind", err)
		}
		if _, err := c.RecordingStatus(ctx, "7"); err != nil && !errors.As(err, &ue) {
			t.Fatalf("recording status error %v is not an *upstream.Error", err)
		}
	})
}

// FuzzRetryAfter: any Retry-After value gives a wait between 0 and maxRetryAfter, and
// a number of seconds up to it is that many seconds.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "3", "-1", "99999999999999999999", "Wed, 21 Oct 2015 07:28:00 GMT", "soon"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, v string) {
		if d := parseRetryAfter(v, now); d < 0 || d > maxRetryAfter {
			t.Fatalf("Retry-After %q gives %s", v, d)
		}
		if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= int(maxRetryAfter/time.Second) && parseRetryAfter(v, now) != time.Duration(n)*time.Second {
			t.Fatalf("Retry-After %q is not %d seconds", v, n)
		}
	})
}

// FuzzIDToken: an id_token of any shape yields a tenant and issuer or nothing.
func FuzzIDToken(f *testing.F) {
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"tenantId": "t", "iss": "https://x"}).SignedString([]byte("k"))
	for _, s := range []string{tok, "", "a.b.c", "eyJ9.eyJ9.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = idTokenTenant(s)
	})
}
