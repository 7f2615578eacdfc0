package auth

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// JWTOptions configure the JWT provider. Exactly one of Secret (HS256)
// and PublicKeyFile (RS256) is set.
type JWTOptions struct {
	Secret        []byte // HS256 key
	PublicKeyFile string // PEM RSA public key (PKIX or PKCS#1) for RS256
	// TenantClaim and UserClaim name the claims; defaults "tenant" and
	// "sub". ACLClaim (default "acl") optionally holds a list of Rule.
	TenantClaim, UserClaim, ACLClaim string
	// Method is the v5 enhanced-authentication method whose data is the
	// token. Default "JWT". Without it, the token is the password.
	Method string
	// Leeway tolerates clock skew on exp and nbf. Default 0.
	Leeway time.Duration
}

// JWT authenticates clients by a signed token: the password, or the data
// of the v5 enhanced-authentication method. exp and nbf are enforced.
type JWT struct {
	o   JWTOptions
	key *rsa.PublicKey
	now func() time.Time
}

// NewJWT checks o and returns the provider.
func NewJWT(o JWTOptions) (*JWT, error) {
	j := &JWT{o: o, now: time.Now}
	switch {
	case len(o.Secret) > 0 && o.PublicKeyFile != "":
		return nil, errors.New("auth: jwt: set one of secret and publicKeyFile, not both")
	case len(o.Secret) == 0 && o.PublicKeyFile == "":
		return nil, errors.New("auth: jwt: secret or publicKeyFile is required")
	case o.PublicKeyFile != "":
		b, err := os.ReadFile(o.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth: jwt: %w", err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("auth: jwt: %s holds no PEM block", o.PublicKeyFile)
		}
		if k, err := x509.ParsePKIXPublicKey(blk.Bytes); err == nil {
			rk, ok := k.(*rsa.PublicKey)
			if !ok {
				return nil, fmt.Errorf("auth: jwt: %s is not an RSA key", o.PublicKeyFile)
			}
			j.key = rk
		} else if rk, err2 := x509.ParsePKCS1PublicKey(blk.Bytes); err2 == nil {
			j.key = rk
		} else {
			return nil, fmt.Errorf("auth: jwt: %s: %v", o.PublicKeyFile, err)
		}
	}
	if j.o.TenantClaim == "" {
		j.o.TenantClaim = "tenant"
	}
	if j.o.UserClaim == "" {
		j.o.UserClaim = "sub"
	}
	if j.o.ACLClaim == "" {
		j.o.ACLClaim = "acl"
	}
	if j.o.Method == "" {
		j.o.Method = "JWT"
	}
	return j, nil
}

// Authenticate implements Provider.
func (j *JWT) Authenticate(_ context.Context, r *Request) (*Result, error) {
	token := string(r.Password)
	if r.AuthMethod != "" {
		if r.AuthMethod != j.o.Method {
			return nil, fmt.Errorf("%w %q", ErrBadMethod, r.AuthMethod)
		}
		token = string(r.AuthData)
	}
	claims, err := j.verify(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCredentials, err)
	}
	tenant, _ := claims[j.o.TenantClaim].(string)
	user, _ := claims[j.o.UserClaim].(string)
	if tenant == "" || user == "" {
		return nil, fmt.Errorf("%w: the token lacks the %q or %q claim", ErrNotAuthorized, j.o.TenantClaim, j.o.UserClaim)
	}
	var c Checker = AllowAll{}
	if raw, ok := claims[j.o.ACLClaim]; ok {
		b, _ := json.Marshal(raw)
		var rules []Rule
		if err := json.Unmarshal(b, &rules); err != nil {
			return nil, fmt.Errorf("%w: the %q claim is not a list of rules", ErrNotAuthorized, j.o.ACLClaim)
		}
		c = &ACL{Rules: rules, User: user, ClientID: r.ClientID, Tenant: tenant}
	}
	return &Result{Tenant: tenant, User: user, Checker: c}, nil
}

var b64 = base64.RawURLEncoding

// verify checks a compact JWS and its time claims, and returns the claims.
func (j *JWT) verify(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &hdr) != nil {
		return nil, errors.New("bad JWT header")
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, errors.New("bad JWT signature encoding")
	}
	signed := []byte(parts[0] + "." + parts[1])
	switch {
	case hdr.Alg == "HS256" && len(j.o.Secret) > 0:
		m := hmac.New(sha256.New, j.o.Secret)
		m.Write(signed)
		if !hmac.Equal(sig, m.Sum(nil)) {
			return nil, errors.New("bad signature")
		}
	case hdr.Alg == "RS256" && j.key != nil:
		h := sha256.Sum256(signed)
		if rsa.VerifyPKCS1v15(j.key, crypto.SHA256, h[:], sig) != nil {
			return nil, errors.New("bad signature")
		}
	default:
		return nil, fmt.Errorf("algorithm %q is not the configured one", hdr.Alg)
	}
	cb, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("bad JWT claims encoding")
	}
	var claims map[string]any
	if err := json.Unmarshal(cb, &claims); err != nil {
		return nil, errors.New("bad JWT claims")
	}
	now := j.now()
	if exp, ok := claims["exp"].(float64); ok && now.After(time.Unix(int64(exp), 0).Add(j.o.Leeway)) {
		return nil, errors.New("token expired")
	}
	if nbf, ok := claims["nbf"].(float64); ok && now.Add(j.o.Leeway).Before(time.Unix(int64(nbf), 0)) {
		return nil, errors.New("token not valid yet")
	}
	return claims, nil
}
