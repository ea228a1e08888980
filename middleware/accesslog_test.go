package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/maskgate/maskgate/middleware"
)

func TestClientIP(t *testing.T) {
	lb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")}
	for _, tt := range []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		client  string
	}{
		{"no proxy trusted: the peer, whatever the header says", nil, "10.1.2.3:4000", []string{"203.0.113.7"}, "10.1.2.3"},
		{"a peer not trusted: the peer", lb, "198.51.100.9:4000", []string{"203.0.113.7"}, "198.51.100.9"},
		{"a trusted peer: the address it appended", lb, "10.1.2.3:4000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"a caller's own entry left of it is not believed", lb, "10.1.2.3:4000", []string{"192.0.2.66, 203.0.113.7"}, "203.0.113.7"},
		{"trusted hops are skipped", lb, "10.1.2.3:4000", []string{"203.0.113.7, 10.9.9.9", "10.8.8.8"}, "203.0.113.7"},
		{"a trusted peer without the header", lb, "10.1.2.3:4000", nil, "10.1.2.3"},
		{"an entry that is no address stops the walk", lb, "10.1.2.3:4000", []string{"203.0.113.7, bogus, 10.9.9.9"}, "10.9.9.9"},
		{"entries with ports", lb, "10.1.2.3:4000", []string{"203.0.113.7:51000, [2001:db8:1::5]:443"}, "203.0.113.7"},
		{"IPv6", lb, "[2001:db8:1::1]:4000", []string{"2001:db8:2::7"}, "2001:db8:2::7"},
		{"an IPv4-mapped peer", lb, "[::ffff:10.1.2.3]:4000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"an IPv4-mapped entry", lb, "10.1.2.3:4000", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v1/masks", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if client, _ := middleware.ClientIP(r, tt.trusted); client != tt.client {
				t.Errorf("client = %s; want %s", client, tt.client)
			}
		})
	}
}
