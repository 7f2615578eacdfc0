package apiserver

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// testLogger discards logs unless the test fails verbosely; tests keep
// output quiet.
func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// start starts a server on 127.0.0.1:0 with opts and closes it at cleanup.
func start(t *testing.T, opts Options) *Server {
	t.Helper()
	opts.Addr = "127.0.0.1:0"
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends one request to s and returns the response.
func do(t *testing.T, s *Server, method, path string, header map[string]string) response {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://"+s.Addr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// jsonBody decodes r's body as a JSON object of strings.
func jsonBody(t *testing.T, r response) map[string]string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("body %q is not a JSON object of strings: %v", r.body, err)
	}
	return m
}

// wantError checks r is a JSON error with status and a non-empty reason.
func wantError(t *testing.T, r response, status int) map[string]string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	m := jsonBody(t, r)
	if m["error"] == "" || m["reason"] == "" {
		t.Errorf("error body %q lacks error or reason", r.body)
	}
	return m
}

func TestHealthz(t *testing.T) {
	s := start(t, Options{Ready: func() error { return errors.New("never ready") }})
	r := do(t, s, "GET", "/healthz", nil)
	if r.status != 200 || jsonBody(t, r)["status"] != "ok" {
		t.Errorf("GET /healthz = %d %s, want 200 {\"status\":\"ok\"}", r.status, r.body)
	}
	r = do(t, s, "HEAD", "/healthz", nil)
	if r.status != 200 || r.body != "" {
		t.Errorf("HEAD /healthz = %d %q, want 200 and no body", r.status, r.body)
	}
}

func TestReadyz(t *testing.T) {
	var notReady atomic.Pointer[error]
	s := start(t, Options{Ready: func() error {
		if p := notReady.Load(); p != nil {
			return *p
		}
		return nil
	}})

	r := do(t, s, "GET", "/readyz", nil)
	if r.status != 200 || jsonBody(t, r)["status"] != "ready" {
		t.Errorf("ready: GET /readyz = %d %s, want 200 ready", r.status, r.body)
	}

	err := errors.New("mqtt server not started")
	notReady.Store(&err)
	r = do(t, s, "GET", "/readyz", nil)
	m := jsonBody(t, r)
	if r.status != 503 || m["status"] != "not ready" || m["reason"] != err.Error() {
		t.Errorf("not ready: GET /readyz = %d %s, want 503 not ready with reason %q", r.status, r.body, err)
	}
}

func TestReadyzNilReadyIsReady(t *testing.T) {
	s := start(t, Options{})
	if r := do(t, s, "GET", "/readyz", nil); r.status != 200 {
		t.Errorf("GET /readyz = %d %s, want 200", r.status, r.body)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_widgets_total", Help: "Widgets."})
	reg.MustRegister(c)
	c.Add(3)
	s := start(t, Options{Gatherer: reg, Registerer: reg})

	do(t, s, "GET", "/healthz", nil)
	do(t, s, "GET", "/nope", nil)
	r := do(t, s, "GET", "/metrics", nil)
	if r.status != 200 {
		t.Fatalf("GET /metrics = %d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain...", ct)
	}
	for _, want := range []string{
		"test_widgets_total 3",
		`bifromq_api_requests_total{code="200",path="/healthz"} 1`,
		`bifromq_api_requests_total{code="404",path="unmatched"} 1`,
		"bifromq_api_request_duration_seconds_bucket",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, r.body)
		}
	}
}

func TestMetricsDefaultPrivateRegistry(t *testing.T) {
	s := start(t, Options{})
	do(t, s, "GET", "/healthz", nil)
	r := do(t, s, "GET", "/metrics", nil)
	if !strings.Contains(r.body, `bifromq_api_requests_total{code="200",path="/healthz"} 1`) {
		t.Errorf("/metrics without Gatherer lacks the server's own metrics:\n%s", r.body)
	}
}

func TestMetricsUnregisteredOnClose(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := Options{Addr: "127.0.0.1:0", Registerer: reg, Gatherer: reg, Logger: testLogger()}
	s1, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(opts); err == nil {
		t.Fatal("a second server on the same Registerer registered its metrics twice")
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := New(opts)
	if err != nil {
		t.Fatalf("New after the first server closed: %v", err)
	}
	s2.Close()
}

func TestNotFound(t *testing.T) {
	s := start(t, Options{})
	m := wantError(t, do(t, s, "GET", "/no/such/thing", nil), 404)
	if m["error"] != "not found" || !strings.Contains(m["reason"], "/no/such/thing") {
		t.Errorf("404 body = %v, want error \"not found\" and the path in the reason", m)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	s := start(t, Options{})
	r := do(t, s, "POST", "/healthz", nil)
	m := wantError(t, r, 405)
	if m["error"] != "method not allowed" {
		t.Errorf("error = %q, want \"method not allowed\"", m["error"])
	}
	if got := r.header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("Allow = %q, want \"GET, HEAD\"", got)
	}
}

func TestToken(t *testing.T) {
	const token = "s3cret-token"
	s := start(t, Options{Token: token})
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

	for _, path := range []string{"/readyz", "/metrics", "/no/such/thing"} {
		r := do(t, s, "GET", path, nil)
		wantError(t, r, 401)
		if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
			t.Errorf("GET %s without token: WWW-Authenticate = %q, want Bearer ...", path, got)
		}
		wantError(t, do(t, s, "GET", path, bearer("wrong")), 401)
		wantError(t, do(t, s, "GET", path, map[string]string{"Authorization": token}), 401)
	}
	if r := do(t, s, "GET", "/healthz", nil); r.status != 200 {
		t.Errorf("GET /healthz without token = %d, want 200 (liveness is public)", r.status)
	}
	if r := do(t, s, "GET", "/readyz", bearer(token)); r.status != 200 {
		t.Errorf("GET /readyz with token = %d %s, want 200", r.status, r.body)
	}
	if r := do(t, s, "GET", "/metrics", map[string]string{"Authorization": "bearer " + token}); r.status != 200 {
		t.Errorf("GET /metrics with lower-case scheme = %d, want 200", r.status)
	}
	wantError(t, do(t, s, "GET", "/no/such/thing", bearer(token)), 404)
}

func TestHandlerErrorsAndPanics(t *testing.T) {
	s, err := New(Options{Addr: "127.0.0.1:0", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s.router.handle(fasthttp.MethodGet, "/teapot", func(*fasthttp.RequestCtx) error {
		return errorf(fasthttp.StatusTeapot, "short and stout")
	})
	s.router.handle(fasthttp.MethodGet, "/fail", func(*fasthttp.RequestCtx) error {
		return errors.New("disk on fire")
	})
	s.router.handle(fasthttp.MethodGet, "/panic", func(*fasthttp.RequestCtx) error { panic("boom") })
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	if m := wantError(t, do(t, s, "GET", "/teapot", nil), 418); m["reason"] != "short and stout" {
		t.Errorf("reason = %q", m["reason"])
	}
	if m := wantError(t, do(t, s, "GET", "/fail", nil), 500); m["reason"] != "disk on fire" {
		t.Errorf("reason = %q", m["reason"])
	}
	if m := wantError(t, do(t, s, "GET", "/panic", nil), 500); !strings.Contains(m["reason"], "boom") {
		t.Errorf("reason = %q", m["reason"])
	}
	// The server still serves after a panic.
	if r := do(t, s, "GET", "/healthz", nil); r.status != 200 {
		t.Errorf("GET /healthz after a panic = %d", r.status)
	}
}

func TestDuplicateRoutePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("registering GET /healthz twice did not panic")
		}
	}()
	r := newRouter()
	r.handle("GET", "/healthz", nil)
	r.handle("GET", "/healthz", nil)
}

// raw sends req on a new connection and returns the status line and body.
func raw(t *testing.T, s *Server, req string) (status string, body string) {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	return resp.Status, string(b)
}

func TestBadRequestsAreJSON(t *testing.T) {
	s := start(t, Options{ReadBufferSize: 1024, MaxRequestBodySize: 16})

	status, body := raw(t, s, "NOT HTTP AT ALL\r\n\r\n")
	if !strings.HasPrefix(status, "400") || !strings.Contains(body, `"reason"`) {
		t.Errorf("garbage: %s %s, want 400 with a JSON reason", status, body)
	}
	status, body = raw(t, s, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 2048)+"\r\n\r\n")
	if !strings.HasPrefix(status, "431") || !strings.Contains(body, "1024 bytes") {
		t.Errorf("big header: %s %s, want 431 naming the bound", status, body)
	}
	status, body = raw(t, s, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"+strings.Repeat("b", 100))
	if !strings.HasPrefix(status, "413") || !strings.Contains(body, "16 bytes") {
		t.Errorf("big body: %s %s, want 413 naming the bound", status, body)
	}
}

func TestCloseIdempotent(t *testing.T) {
	// Close before Start.
	s, err := New(Options{Addr: "127.0.0.1:0", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Close #%d before Start: %v", i+1, err)
		}
	}
	if err := s.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}

	// Close after Start, twice, then the port is free and the server gone.
	s, err = New(Options{Addr: "127.0.0.1:0", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	addr := s.Addr().String()
	for i := range 3 {
		if err := s.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts after Close", addr)
	}
}

func TestCloseConcurrent(t *testing.T) {
	s := start(t, Options{})
	done := make(chan error, 4)
	for range 4 {
		go func() { done <- s.Close() }()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}

func TestCloseIdleKeepAliveIsQuick(t *testing.T) {
	s := start(t, Options{})
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	t0 := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Close with an idle keep-alive connection took %v", d)
	}
}

func TestCloseCutsStalledRequest(t *testing.T) {
	s := start(t, Options{ShutdownTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Half a request: the connection is busy reading until ReadTimeout (10s).
	io.WriteString(c, "GET /healthz HTTP/1.1\r\n")
	time.Sleep(50 * time.Millisecond)

	t0 := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("Close took %v with ShutdownTimeout 200ms", d)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Errorf("stalled connection: %v, want it closed by the server", err)
	}
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "reset") }

func TestStartBusyAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := New(Options{Addr: ln.Addr().String(), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start(); err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("Start on a busy address = %v, want an error naming it", err)
	}
}

func TestValidate(t *testing.T) {
	o := Options{Addr: "nope", Token: "has space", ReadTimeout: -1, ReadBufferSize: 10, Concurrency: -2}
	o.EnsureDefaults()
	err := o.Validate()
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Validate = %v, want ErrInvalidOptions", err)
	}
	for _, f := range []string{"Addr:", "Token:", "ReadTimeout:", "ReadBufferSize:", "Concurrency:"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("Validate error lacks %s: %v", f, err)
		}
	}
	d := Options{}
	d.EnsureDefaults()
	if err := d.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}
