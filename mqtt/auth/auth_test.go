package auth

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestACL(t *testing.T) {
	a := &ACL{User: "alice", ClientID: "c1", Tenant: "acme", Rules: []Rule{
		{Allow: false, Topics: []string{"devices/%u/secret"}},
		{Allow: true, Actions: []string{"publish", "subscribe"}, Topics: []string{"devices/%u/#"}},
		{Allow: true, Actions: []string{"subscribe"}, Topics: []string{"broadcast/+"}},
		{Allow: true, Actions: []string{"publish"}, Topics: []string{"clients/%c", "tenants/%t/+"}},
	}}
	for _, c := range []struct {
		act   Action
		topic string
		want  bool
	}{
		{Publish, "devices/alice/t", true},
		{Publish, "devices/alice/secret", false},
		{Publish, "devices/bob/t", false},
		{Subscribe, "devices/alice/#", true},
		{Subscribe, "devices/+/t", false}, // would reach other users
		{Subscribe, "broadcast/x", true},
		{Subscribe, "broadcast/+", true},
		{Subscribe, "broadcast/#", false},
		{Publish, "broadcast/x", false},
		{Publish, "clients/c1", true},
		{Publish, "tenants/acme/x", true},
		{Publish, "tenants/other/x", false},
	} {
		if got := a.Allow(c.act, c.topic); got != c.want {
			t.Errorf("%s %s = %v, want %v", c.act, c.topic, got, c.want)
		}
	}
	if !MatchTopic("a/#", "a") || MatchTopic("#", "$SYS/x") || !MatchTopic("+/b", "a/b") || MatchTopic("a/+", "a/b/c") {
		t.Fatal("MatchTopic")
	}
}

func TestFileProvider(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	dir := t.TempDir()
	path := filepath.Join(dir, "users.yaml")
	os.WriteFile(path, []byte(`users:
  - username: alice
    passwordHash: "`+string(hash)+`"
    tenant: acme
    acl:
      - {allow: true, topics: ["devices/%u/#"]}
  - username: sensor
    certificateCN: sensor-cn
    tenant: acme
`), 0o600)
	f, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := f.Authenticate(ctx, &Request{ClientID: "c", Username: "alice", HasUsername: true, Password: []byte("s3cret"), HasPassword: true})
	if err != nil || r.Tenant != "acme" || r.User != "alice" || !r.Checker.Allow(Publish, "devices/alice/x") || r.Checker.Allow(Publish, "x") {
		t.Fatalf("alice: %+v %v", r, err)
	}
	for _, bad := range []*Request{
		{Username: "alice", Password: []byte("wrong")},
		{Username: "nobody", Password: []byte("s3cret")},
		{Username: "sensor", Password: []byte("")}, // certificate-only user without a certificate
	} {
		if _, err := f.Authenticate(ctx, bad); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s/%s: %v, want ErrBadCredentials", bad.Username, bad.Password, err)
		}
	}
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "sensor-cn"}}
	if r, err := f.Authenticate(ctx, &Request{PeerCertificates: []*x509.Certificate{cert}}); err != nil || r.User != "sensor" {
		t.Fatalf("certificate login: %+v %v", r, err)
	}
	if _, err := f.Authenticate(ctx, &Request{AuthMethod: "SCRAM"}); !errors.Is(err, ErrBadMethod) {
		t.Fatalf("enhanced auth: %v", err)
	}
	// A bad file reports every problem.
	os.WriteFile(path, []byte("users:\n  - username: x\n  - username: x\n    passwordHash: nope\n    tenant: t\n"), 0o600)
	if _, err := LoadFile(path); err == nil {
		t.Fatal("a bad users file loaded")
	} else {
		t.Log(err)
	}
}

func TestWebhookProvider(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var req WebhookRequest
		json.NewDecoder(r.Body).Decode(&req)
		switch req.Username {
		case "ok":
			json.NewEncoder(w).Encode(WebhookResponse{Allow: true, Tenant: "t1", User: "u1",
				ACL: []Rule{{Allow: true, Topics: []string{"t1/#"}}}})
		case "denied":
			json.NewEncoder(w).Encode(WebhookResponse{Allow: false})
		case "wrong":
			w.WriteHeader(http.StatusUnauthorized)
		case "slow":
			time.Sleep(500 * time.Millisecond)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	w, err := NewWebhook(WebhookOptions{URL: srv.URL, Timeout: 100 * time.Millisecond, CacheTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		r, err := w.Authenticate(ctx, &Request{ClientID: "c", Username: "ok", Password: []byte("p"), RemoteAddr: "1.2.3.4:5"})
		if err != nil || r.Tenant != "t1" || !r.Checker.Allow(Publish, "t1/x") || r.Checker.Allow(Publish, "t2/x") {
			t.Fatalf("ok: %+v %v", r, err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("the cache did not hold: %d calls", calls.Load())
	}
	for user, want := range map[string]error{"denied": ErrNotAuthorized, "wrong": ErrBadCredentials,
		"slow": ErrUnavailable, "boom": ErrUnavailable} {
		start := time.Now()
		if _, err := w.Authenticate(ctx, &Request{Username: user}); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", user, err, want)
		}
		if time.Since(start) > 400*time.Millisecond {
			t.Errorf("%s: took %v despite the 100 ms timeout", user, time.Since(start))
		}
	}
	if _, err := NewWebhook(WebhookOptions{URL: "ftp://x"}); err == nil {
		t.Fatal("a non-http URL was accepted")
	}
}

func sign(t *testing.T, alg string, claims map[string]any, key any) string {
	h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	c, _ := json.Marshal(claims)
	s := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	var sig []byte
	switch k := key.(type) {
	case []byte:
		m := hmac.New(sha256.New, k)
		m.Write([]byte(s))
		sig = m.Sum(nil)
	case *rsa.PrivateKey:
		d := sha256.Sum256([]byte(s))
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:]); err != nil {
			t.Fatal(err)
		}
	}
	return s + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestJWTProvider(t *testing.T) {
	ctx := context.Background()
	secret := []byte("k")
	hs, err := NewJWT(JWTOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	future := float64(time.Now().Add(time.Hour).Unix())
	good := sign(t, "HS256", map[string]any{"sub": "u", "tenant": "t", "exp": future,
		"acl": []map[string]any{{"allow": true, "topics": []string{"%t/%u/#"}}}}, secret)
	r, err := hs.Authenticate(ctx, &Request{Password: []byte(good)})
	if err != nil || r.Tenant != "t" || r.User != "u" || !r.Checker.Allow(Publish, "t/u/x") || r.Checker.Allow(Publish, "t/v/x") {
		t.Fatalf("HS256: %+v %v", r, err)
	}
	if r, err := hs.Authenticate(ctx, &Request{AuthMethod: "JWT", AuthData: []byte(good)}); err != nil || r.User != "u" {
		t.Fatalf("enhanced auth: %v", err)
	}
	for name, tok := range map[string]string{
		"expired":   sign(t, "HS256", map[string]any{"sub": "u", "tenant": "t", "exp": 1}, secret),
		"other key": sign(t, "HS256", map[string]any{"sub": "u", "tenant": "t"}, []byte("x")),
		"alg none":  sign(t, "none", map[string]any{"sub": "u", "tenant": "t"}, []byte("k")),
		"garbage":   "a.b",
	} {
		if _, err := hs.Authenticate(ctx, &Request{Password: []byte(tok)}); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := hs.Authenticate(ctx, &Request{Password: []byte(sign(t, "HS256", map[string]any{"sub": "u"}, secret))}); !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("no tenant claim: %v", err)
	}
	// RS256 with a PEM public key.
	pk, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&pk.PublicKey)
	path := filepath.Join(t.TempDir(), "pub.pem")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	rs, err := NewJWT(JWTOptions{PublicKeyFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := rs.Authenticate(ctx, &Request{Password: []byte(sign(t, "RS256", map[string]any{"sub": "u", "tenant": "t"}, pk))}); err != nil || r.Tenant != "t" {
		t.Fatalf("RS256: %v", err)
	}
	if _, err := rs.Authenticate(ctx, &Request{Password: []byte(good)}); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("HS256 token against an RS256 provider: %v", err)
	}
}
