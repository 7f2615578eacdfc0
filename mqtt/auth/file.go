package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// UsersFile is the format of the File provider's users file (YAML):
//
//	users:
//	  - username: alice
//	    passwordHash: "$2a$10$..."   # bcrypt (htpasswd -nbB, or `bifromq passwd`)
//	    tenant: acme
//	    acl:
//	      - {allow: true, actions: [publish, subscribe], topics: ["devices/%u/#"]}
//	      - {allow: true, actions: [subscribe], topics: ["broadcast/#"]}
//	  - username: sensor-7
//	    certificateCN: sensor-7       # a TLS client certificate with this CN logs in
//	    tenant: acme
//	defaultAllow: false               # when no rule matches
type UsersFile struct {
	Users        []User `yaml:"users"`
	DefaultAllow bool   `yaml:"defaultAllow"`
}

// User is one entry of a users file.
type User struct {
	Username      string `yaml:"username"`
	PasswordHash  string `yaml:"passwordHash"`
	CertificateCN string `yaml:"certificateCN"`
	Tenant        string `yaml:"tenant"`
	ACL           []Rule `yaml:"acl"`
}

// File authenticates against a users file.
type File struct {
	byName map[string]*User
	byCN   map[string]*User
	deflt  bool
}

// LoadFile reads and checks a users file.
func LoadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: users file: %w", err)
	}
	var uf UsersFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&uf); err != nil {
		return nil, fmt.Errorf("auth: users file %s: %w", path, err)
	}
	return NewFile(uf)
}

// NewFile checks uf and returns its provider. Every problem is reported,
// each naming the user.
func NewFile(uf UsersFile) (*File, error) {
	f := &File{byName: map[string]*User{}, byCN: map[string]*User{}, deflt: uf.DefaultAllow}
	var errs []error
	for i := range uf.Users {
		u := &uf.Users[i]
		where := fmt.Sprintf("users[%d] (%s)", i, u.Username)
		switch {
		case u.Username == "":
			errs = append(errs, fmt.Errorf("%s: username is required", where))
		case f.byName[u.Username] != nil:
			errs = append(errs, fmt.Errorf("%s: duplicate username", where))
		}
		if u.Tenant == "" {
			errs = append(errs, fmt.Errorf("%s: tenant is required", where))
		}
		if u.PasswordHash == "" && u.CertificateCN == "" {
			errs = append(errs, fmt.Errorf("%s: passwordHash or certificateCN is required", where))
		}
		if u.PasswordHash != "" {
			if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
				errs = append(errs, fmt.Errorf("%s: passwordHash is not a bcrypt hash: %v", where, err))
			}
		}
		for j, r := range u.ACL {
			for _, a := range r.Actions {
				if a != "publish" && a != "subscribe" && a != "all" {
					errs = append(errs, fmt.Errorf("%s: acl[%d]: action %q is not publish, subscribe or all", where, j, a))
				}
			}
			if len(r.Topics) == 0 {
				errs = append(errs, fmt.Errorf("%s: acl[%d]: topics are required", where, j))
			}
		}
		f.byName[u.Username] = u
		if u.CertificateCN != "" {
			f.byCN[u.CertificateCN] = u
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("auth: users file: %w", err)
	}
	return f, nil
}

// dummyHash makes a login for an unknown user cost what a known one does.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("unknown user"), bcrypt.DefaultCost)

// Authenticate implements Provider: a client certificate whose CN names a
// user logs in as that user; otherwise the username and password must
// match a user's bcrypt hash.
func (f *File) Authenticate(_ context.Context, r *Request) (*Result, error) {
	if r.AuthMethod != "" {
		return nil, fmt.Errorf("%w %q", ErrBadMethod, r.AuthMethod)
	}
	var u *User
	if len(r.PeerCertificates) > 0 {
		u = f.byCN[r.PeerCertificates[0].Subject.CommonName]
	}
	if u == nil {
		u = f.byName[r.Username]
		hash := dummyHash
		if u != nil && u.PasswordHash != "" {
			hash = []byte(u.PasswordHash)
		}
		if err := bcrypt.CompareHashAndPassword(hash, r.Password); err != nil || u == nil || u.PasswordHash == "" {
			return nil, ErrBadCredentials
		}
	} else if r.HasUsername && subtle.ConstantTimeCompare([]byte(r.Username), []byte(u.Username)) != 1 {
		return nil, fmt.Errorf("%w: the username does not match the certificate", ErrNotAuthorized)
	}
	return &Result{Tenant: u.Tenant, User: u.Username,
		Checker: &ACL{Rules: u.ACL, Default: f.deflt, User: u.Username, ClientID: r.ClientID, Tenant: u.Tenant}}, nil
}
