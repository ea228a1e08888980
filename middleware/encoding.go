package middleware

import (
	"net/http"
	"strings"

	"github.com/maskgate/maskgate/api"
)

// IdentityBody refuses a POST whose body comes in a content coding (`Content-Encoding:
// gzip`, as some HTTP clients are set up to send every body) with 415
// unsupported_content_encoding and `Accept-Encoding: identity` (RFC 7694). The gateway
// reads a body as it comes: a compressed one would be 400 "not valid JSON", which
// sends its reader looking for a fault in JSON that is right. Bodies are at most
// 16 KiB, so nothing is lost by sending them uncompressed. It runs after Authorize,
// as the body's other checks do, and before Idempotency keeps an answer.
func IdentityBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.ContentLength != 0 && coded(r.Header.Values("Content-Encoding")) {
			w.Header().Set("Accept-Encoding", "identity")
			api.WriteProblem(w, r, http.StatusUnsupportedMediaType, api.ProblemCodeUnsupportedContentEncoding,
				"the request body must be sent uncompressed: no Content-Encoding but identity", 0)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// coded reports whether Content-Encoding values name anything but identity (a list,
// "gzip, identity", names gzip).
func coded(values []string) bool {
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" && !strings.EqualFold(v, "identity") {
			return true
		}
	}
	return false
}
