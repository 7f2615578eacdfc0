package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"
)

// handlerFunc serves one route. It writes its success response itself and
// returns an *httpError for a failure the client should see as such; any
// other error is answered 500 with the error's text as the reason.
type handlerFunc func(ctx *fasthttp.RequestCtx) error

// httpError is a failure answered as {"error": <status text>, "reason": ...}.
type httpError struct {
	status int
	reason string
	header [][2]string // extra response headers, e.g. Allow
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.status, statusText(e.status), e.reason)
}

// errorf returns an *httpError with the given status and reason.
func errorf(status int, format string, args ...any) *httpError {
	return &httpError{status: status, reason: fmt.Sprintf(format, args...)}
}

// statusText is the "error" field of an error body: the lower-case status text.
func statusText(status int) string {
	if t := http.StatusText(status); t != "" {
		return strings.ToLower(t)
	}
	return "error"
}

// endpoint is every route of one path.
type endpoint struct {
	path    string
	public  bool // served without the token
	methods map[string]handlerFunc
	allow   string // the Allow header: the methods, sorted, comma-separated
}

// router maps method and path to a handler. Paths are exact (no patterns):
// the API passes parameters in headers and query strings, never in the path.
// It is built before the server starts and read-only afterwards.
type router struct {
	endpoints map[string]*endpoint
}

func newRouter() *router { return &router{endpoints: make(map[string]*endpoint)} }

// handle registers h for method and path. A GET route also serves HEAD.
// It panics on a duplicate, which is a programming error.
func (r *router) handle(method, path string, h handlerFunc) *endpoint {
	e := r.endpoints[path]
	if e == nil {
		e = &endpoint{path: path, methods: make(map[string]handlerFunc)}
		r.endpoints[path] = e
	}
	add := func(m string) {
		if _, dup := e.methods[m]; dup {
			panic(fmt.Sprintf("apiserver: duplicate route %s %s", m, path))
		}
		e.methods[m] = h
	}
	add(method)
	if method == fasthttp.MethodGet {
		add(fasthttp.MethodHead)
	}
	ms := make([]string, 0, len(e.methods))
	for m := range e.methods {
		ms = append(ms, m)
	}
	slices.Sort(ms)
	e.allow = strings.Join(ms, ", ")
	return e
}

// lookup returns the endpoint of path, or nil.
func (r *router) lookup(path string) *endpoint { return r.endpoints[path] }

// writeJSON answers status with v encoded as JSON.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = fasthttp.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: statusText(status), Reason: "encoding the response: " + err.Error()})
	}
	// Not Response.Reset: it would also reset the server's per-response
	// settings (NoDefaultDate among them).
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

// writeError answers e as its JSON error body.
func writeError(ctx *fasthttp.RequestCtx, e *httpError) {
	writeJSON(ctx, e.status, errorBody{Error: statusText(e.status), Reason: e.reason})
	for _, h := range e.header {
		ctx.Response.Header.Set(h[0], h[1])
	}
}
