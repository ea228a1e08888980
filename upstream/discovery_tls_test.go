package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestDiscoveryDoesNotLeaveTLS: with an https token endpoint, an id_token naming a
// plain http issuer, or a discovery document naming a plain http API endpoint, is
// refused: CXone's tokens would otherwise go out in the clear on the word of an answer.
func TestDiscoveryDoesNotLeaveTLS(t *testing.T) {
	for _, tt := range []struct {
		name             string
		issuer, endpoint string // "" is the TLS server's own URL
		refused          string
	}{
		{"https throughout", "", "", ""},
		{"plain http issuer", "http://127.0.0.1:1", "", "issuer is plain http"},
		{"plain http API endpoint", "", "http://api.example.com", "plain http api_endpoint"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var srv *httptest.Server
			srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				switch r.URL.Path {
				case "/auth/token":
					iss := tt.issuer
					if iss == "" {
						iss = srv.URL
					}
					idToken, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": iss, "tenantId": "t1"}).SignedString([]byte("k"))
					fmt.Fprintf(w, `{"access_token":"at","token_type":"bearer","expires_in":3600,"id_token":%q}`, idToken)
				case "/.well-known/cxone-configuration":
					endpoint := tt.endpoint
					if endpoint == "" {
						endpoint = srv.URL
					}
					fmt.Fprintf(w, `{"api_endpoint":%q}`, endpoint)
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			c := New(Config{AuthURL: srv.URL + "/auth/token", Credentials: Credentials{ClientID: "c", ClientSecret: "s", AccessKeyID: "k", AccessKeySecret: "x"}})
			roots := x509.NewCertPool()
			roots.AddCert(srv.Certificate())
			c.hc.TLSConfig = &tls.Config{RootCAs: roots}

			endpoint, err := c.Endpoint(context.Background())
			if tt.refused == "" {
				if err != nil || endpoint != srv.URL {
					t.Fatalf("Endpoint = %q, %v; want %s", endpoint, err, srv.URL)
				}
				return
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.refused) {
				t.Fatalf("Endpoint = %q, %v; want ErrRefused saying %q", endpoint, err, tt.refused)
			}
		})
	}
}
