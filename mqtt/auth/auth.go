// Package auth decides who a connecting client is and what it may do: a
// Provider maps a CONNECT (username and password, a client certificate,
// or a v5 enhanced-authentication method) to a tenant, a user and a
// Checker of publish and subscribe permissions.
//
// Built in: DevOnly (everything allowed, tenant "DevOnly": only for
// development), File (a users file with bcrypt hashes, a tenant per user
// and ACL rules), Webhook (an HTTP service decides, with a timeout and a
// cache) and JWT (HS256 or RS256 tokens carrying tenant and user claims).
//
// Providers are called concurrently from connection goroutines; each is
// safe for concurrent use.
package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// Request is what a provider sees of a connecting client.
type Request struct {
	ClientID    string
	Username    string
	HasUsername bool
	Password    []byte
	HasPassword bool
	// PeerCertificates are the client's verified TLS certificates, leaf
	// first; empty without TLS client authentication.
	PeerCertificates []*x509.Certificate
	RemoteAddr       string
	// AuthMethod and AuthData are the v5 enhanced-authentication
	// properties of CONNECT; empty otherwise.
	AuthMethod string
	AuthData   []byte
}

// Result is an authenticated client.
type Result struct {
	Tenant string
	User   string
	// Checker answers the client's publish and subscribe permissions.
	Checker Checker
}

// Action is what a permission is asked for.
type Action byte

// Actions.
const (
	Publish   Action = 1
	Subscribe Action = 2
)

func (a Action) String() string {
	switch a {
	case Publish:
		return "publish"
	case Subscribe:
		return "subscribe"
	}
	return "unknown"
}

// Checker decides whether the client may publish to a topic or subscribe
// to a topic filter. Safe for concurrent use.
type Checker interface {
	Allow(a Action, topic string) bool
}

// AllowAll is a Checker that allows everything.
type AllowAll struct{}

// Allow implements Checker.
func (AllowAll) Allow(Action, string) bool { return true }

// Provider authenticates clients.
type Provider interface {
	// Authenticate returns who the client is, or an error wrapping one of
	// ErrBadCredentials, ErrNotAuthorized, ErrBadMethod or ErrUnavailable.
	Authenticate(ctx context.Context, r *Request) (*Result, error)
}

// Authentication errors; the frontend answers each with its reason code.
var (
	// ErrBadCredentials: wrong or missing username, password or token
	// (v5 0x86, v3 return code 4).
	ErrBadCredentials = errors.New("auth: bad user name or password")
	// ErrNotAuthorized: known, but not allowed to connect (v5 0x87, v3 5).
	ErrNotAuthorized = errors.New("auth: not authorized")
	// ErrBadMethod: an enhanced-authentication method the provider does
	// not support (v5 0x8C).
	ErrBadMethod = errors.New("auth: bad authentication method")
	// ErrUnavailable: the provider could not decide (a webhook timed out
	// or failed): v5 0x88 server unavailable, v3 3.
	ErrUnavailable = errors.New("auth: provider unavailable")
)

// DevOnlyTenant is the tenant of every client of the DevOnly provider.
const DevOnlyTenant = "DevOnly"

// DevOnly allows every client, as tenant DevOnly, to do everything. It
// is the default only when no provider is configured.
type DevOnly struct{}

// Authenticate implements Provider. It supports no enhanced
// authentication method.
func (DevOnly) Authenticate(_ context.Context, r *Request) (*Result, error) {
	if r.AuthMethod != "" {
		return nil, fmt.Errorf("%w %q", ErrBadMethod, r.AuthMethod)
	}
	user := r.Username
	if user == "" {
		user = r.ClientID
	}
	return &Result{Tenant: DevOnlyTenant, User: user, Checker: AllowAll{}}, nil
}

// Rule is one ACL rule: it allows (or denies) actions on topics matching
// any of its patterns. Patterns are MQTT topic filters ("+" and "#") in
// which %u, %c and %t stand for the user, the client id and the tenant.
type Rule struct {
	Allow   bool     `yaml:"allow" json:"allow"`
	Actions []string `yaml:"actions" json:"actions"` // "publish", "subscribe"; empty: both
	Topics  []string `yaml:"topics" json:"topics"`
}

// ACL is an ordered list of rules: the first rule whose action and
// pattern match decides; when none does, Default decides.
type ACL struct {
	Rules   []Rule
	Default bool
	// The placeholders' values.
	User, ClientID, Tenant string
}

// Allow implements Checker. For Subscribe the topic is a filter: a rule
// matches when every topic the filter can match is matched by the
// pattern (so "+" in a pattern covers "+" in a filter, and "#" covers
// everything below it).
func (a *ACL) Allow(act Action, topic string) bool {
	for _, r := range a.Rules {
		if !r.covers(act) {
			continue
		}
		for _, p := range r.Topics {
			p = a.expand(p)
			if act == Publish && MatchTopic(p, topic) || act == Subscribe && CoversFilter(p, topic) {
				return r.Allow
			}
		}
	}
	return a.Default
}

func (r Rule) covers(act Action) bool {
	if len(r.Actions) == 0 {
		return true
	}
	for _, s := range r.Actions {
		if strings.EqualFold(s, act.String()) || s == "all" {
			return true
		}
	}
	return false
}

func (a *ACL) expand(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	return strings.NewReplacer("%u", a.User, "%c", a.ClientID, "%t", a.Tenant).Replace(p)
}

// MatchTopic reports whether topic name t matches filter f (MQTT 4.7).
func MatchTopic(f, t string) bool {
	if strings.HasPrefix(t, "$") && (strings.HasPrefix(f, "+") || strings.HasPrefix(f, "#")) {
		return false
	}
	fl, tl := strings.Split(f, "/"), strings.Split(t, "/")
	for i, l := range fl {
		switch {
		case l == "#":
			return true
		case i >= len(tl):
			return false
		case l != "+" && l != tl[i]:
			return false
		}
	}
	return len(fl) == len(tl)
}

// CoversFilter reports whether every topic that filter s matches is
// matched by pattern p.
func CoversFilter(p, s string) bool {
	pl, sl := strings.Split(p, "/"), strings.Split(s, "/")
	for i, l := range pl {
		switch {
		case l == "#":
			return true
		case i >= len(sl):
			return false
		case sl[i] == "#":
			return false // s reaches deeper than p
		case l == "+":
		case l != sl[i]:
			return false
		}
	}
	return len(pl) == len(sl)
}
