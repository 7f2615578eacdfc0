package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// WebhookOptions configure the Webhook provider.
type WebhookOptions struct {
	// URL receives a POST of WebhookRequest as JSON for each login.
	// Required: http or https.
	URL string
	// Timeout bounds one call. Default 5s.
	Timeout time.Duration
	// CacheTTL keeps successful answers for this long, keyed by the
	// request's credentials; 0 disables the cache. Default 0.
	CacheTTL time.Duration
	// CacheSize bounds the cache's entries. Default 10000.
	CacheSize int
	// Client makes the calls. Default a client with Timeout.
	Client *http.Client
}

// WebhookRequest is the JSON body the webhook receives.
type WebhookRequest struct {
	ClientID      string `json:"clientId"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	CertificateCN string `json:"certificateCN,omitempty"`
	RemoteAddr    string `json:"remoteAddr"`
}

// WebhookResponse is the JSON a webhook answers with (status 200). Any
// other status: 401 and 403 refuse the client (bad credentials, not
// authorized); anything else means the webhook could not decide.
type WebhookResponse struct {
	Allow        bool   `json:"allow"`
	Tenant       string `json:"tenant"`
	User         string `json:"user"`
	ACL          []Rule `json:"acl"`
	DefaultAllow bool   `json:"defaultAllow"` // when no ACL rule matches (no rules at all: allow)
}

// Webhook asks an HTTP service to authenticate each client.
type Webhook struct {
	o WebhookOptions

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	resp    WebhookResponse
	expires time.Time
}

// NewWebhook checks o and returns the provider.
func NewWebhook(o WebhookOptions) (*Webhook, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("auth: webhook URL %q is not an http(s) URL", o.URL)
	}
	if o.Timeout < 0 || o.CacheTTL < 0 || o.CacheSize < 0 {
		return nil, errors.New("auth: webhook Timeout, CacheTTL and CacheSize cannot be negative")
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.CacheSize == 0 {
		o.CacheSize = 10000
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout}
	}
	return &Webhook{o: o, cache: make(map[[32]byte]cached)}, nil
}

// Authenticate implements Provider.
func (w *Webhook) Authenticate(ctx context.Context, r *Request) (*Result, error) {
	if r.AuthMethod != "" {
		return nil, fmt.Errorf("%w %q", ErrBadMethod, r.AuthMethod)
	}
	req := WebhookRequest{ClientID: r.ClientID, Username: r.Username, Password: string(r.Password), RemoteAddr: r.RemoteAddr}
	if len(r.PeerCertificates) > 0 {
		req.CertificateCN = r.PeerCertificates[0].Subject.CommonName
	}
	body, _ := json.Marshal(req)
	// The cache key is the credentials, not where they came from.
	forKey := req
	forKey.RemoteAddr = ""
	kb, _ := json.Marshal(forKey)
	key := sha256.Sum256(kb)
	resp, ok := w.lookup(key)
	if !ok {
		var err error
		if resp, err = w.call(ctx, body); err != nil {
			return nil, err
		}
		if resp.Allow {
			w.store(key, resp)
		}
	}
	if !resp.Allow {
		return nil, ErrNotAuthorized
	}
	if resp.Tenant == "" {
		return nil, fmt.Errorf("%w: the webhook named no tenant", ErrUnavailable)
	}
	user := resp.User
	if user == "" {
		user = r.Username
	}
	var c Checker = AllowAll{}
	if len(resp.ACL) > 0 {
		c = &ACL{Rules: resp.ACL, Default: resp.DefaultAllow, User: user, ClientID: r.ClientID, Tenant: resp.Tenant}
	}
	return &Result{Tenant: resp.Tenant, User: user, Checker: c}, nil
}

func (w *Webhook) call(ctx context.Context, body []byte) (WebhookResponse, error) {
	var out WebhookResponse
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, w.o.URL, bytes.NewReader(body))
	if err != nil {
		return out, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := w.o.Client.Do(hr)
	if err != nil {
		return out, fmt.Errorf("%w: webhook: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return out, ErrBadCredentials
	case resp.StatusCode == http.StatusForbidden:
		return out, ErrNotAuthorized
	case resp.StatusCode != http.StatusOK:
		return out, fmt.Errorf("%w: webhook answered %s", ErrUnavailable, resp.Status)
	case err != nil:
		return out, fmt.Errorf("%w: webhook: %v", ErrUnavailable, err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("%w: webhook answer: %v", ErrUnavailable, err)
	}
	return out, nil
}

func (w *Webhook) lookup(k [32]byte) (WebhookResponse, bool) {
	if w.o.CacheTTL == 0 {
		return WebhookResponse{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.cache[k]
	if !ok || time.Now().After(c.expires) {
		delete(w.cache, k)
		return WebhookResponse{}, false
	}
	return c.resp, true
}

func (w *Webhook) store(k [32]byte, r WebhookResponse) {
	if w.o.CacheTTL == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.cache) >= w.o.CacheSize {
		clear(w.cache) // crude but bounded; entries are cheap to refetch
	}
	w.cache[k] = cached{resp: r, expires: time.Now().Add(w.o.CacheTTL)}
}
