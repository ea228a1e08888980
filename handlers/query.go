package handlers

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/maskgate/maskgate/api"
)

// knownQuery refuses, with 400 invalid_parameter, a query that names a parameter its
// operation does not take, or that cannot be read as one: the generated binding reads
// the parameters it knows and ignores the rest, so `?ttlSeconds=5` on a mask (the ttl
// belongs in the body) would open a mask of the default 15 minutes for a caller that
// asked for 5 s, and `?Force=true` would be an ordinary unmask. Bodies are held to the
// spec's names the same way (api/decode.go). The names an operation takes are those
// openapi.yaml gives it, as the generated request object's Params carries them.
//
// /healthz is left alone: a liveness probe answers that the process is alive, whatever
// it is sent, and a probe set up with a query must not restart a healthy replica.
func knownQuery(next api.StrictHandlerFunc, operationID string) api.StrictHandlerFunc {
	if operationID == "GetHealthz" {
		return next
	}
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request, request any) (any, error) {
		if r.URL.RawQuery == "" {
			return next(ctx, w, r, request)
		}
		// The generated code reads r.URL.Query(), which drops a pair it cannot
		// parse (`force=%zz`, or one after a semicolon) without a word.
		query, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, invalidParameter("the query string is malformed")
		}
		takes, booleans := queryParameters(request)
		for name, values := range query {
			switch {
			case !slices.Contains(takes, name):
				return nil, invalidParameter(unknownQueryDetail(name, takes))
			case slices.Contains(booleans, name) && slices.ContainsFunc(values, notBoolean):
				// The binding takes what strconv.ParseBool does (1, t, TRUE, True):
				// a proxy in front that reads force=true only would let force=1 by.
				return nil, invalidParameter(booleanDetail(name))
			}
		}
		return next(ctx, w, r, request)
	}
}

// queryParameters lists the query parameters of the operation whose generated request
// object is request, and those of them that are booleans: the form tags of its Params
// (headers there have none).
func queryParameters(request any) (names, booleans []string) {
	params, ok := reflect.TypeOf(request).FieldByName("Params")
	if !ok {
		return nil, nil
	}
	for f := range params.Type.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("form"), ",")
		if name == "" {
			continue
		}
		names = append(names, name)
		if f.Type == reflect.TypeFor[*bool]() {
			booleans = append(booleans, name)
		}
	}
	return names, booleans
}

// notBoolean is a value of a boolean query parameter other than JSON's and the
// spec's spellings of one.
func notBoolean(v string) bool { return v != "true" && v != "false" }

func booleanDetail(name string) string { return "parameter " + name + " must be true or false" }

func unknownQueryDetail(name string, takes []string) string {
	detail := "unknown query parameter " + quoted(name)
	if len(takes) == 0 {
		return detail + ": this operation takes none"
	}
	return detail + ": this operation takes " + strings.Join(takes, ", ")
}
