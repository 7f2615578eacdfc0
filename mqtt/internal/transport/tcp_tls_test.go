package transport

import (
	"crypto/tls"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/testsuite/testcert"
)

func TestTCPEcho(t *testing.T) {
	s := startServer(t, Config{Kind: KindTCP})
	c := dial(t, s.addr())
	sc := s.accept(t)
	if err := handshake(sc); err != nil {
		t.Fatalf("Handshake of a plain TCP conn: %v", err)
	}
	if got, want := sc.RemoteAddr().String(), c.LocalAddr().String(); got != want {
		t.Fatalf("RemoteAddr = %s, want %s", got, want)
	}
	write(t, c, []byte("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"))
	expectBytes(t, sc, []byte("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"))
	write(t, sc, []byte("\x20\x02\x00\x00"))
	expectBytes(t, c, []byte("\x20\x02\x00\x00"))
	if PeerCertificates(sc) != nil {
		t.Fatal("PeerCertificates of a TCP conn is not nil")
	}
}

func TestTLSClientAuth(t *testing.T) {
	f := certs(t)
	foreign := certs(t) // another CA: its client cert must not verify
	type clientCert int
	const (
		noCert clientCert = iota
		goodCert
		foreignCert
	)
	cases := []struct {
		name   string
		auth   string
		withCA bool
		cert   clientCert
		wantOK bool
		wantCN string // CN of PeerCertificates()[0], "" for none
	}{
		{"none/no-cert", "none", false, noCert, true, ""},
		{"none/cert-not-asked-for", "none", true, goodCert, true, ""},
		{"request-without-CA/no-cert", "request", false, noCert, true, ""},
		{"request-without-CA/unverified-cert", "request", false, foreignCert, true, testcert.ClientCommonName},
		{"request/no-cert", "request", true, noCert, true, ""},
		{"request/cert", "request", true, goodCert, true, testcert.ClientCommonName},
		{"request/foreign-cert", "request", true, foreignCert, false, ""},
		{"require/no-cert", "require", true, noCert, false, ""},
		{"require/cert", "require", true, goodCert, true, testcert.ClientCommonName},
		{"require/foreign-cert", "require", true, foreignCert, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, Config{Kind: KindTLS, TLS: serverTLS(t, f, tc.auth, tc.withCA)})
			var ccfg *tls.Config
			switch tc.cert {
			case noCert:
				ccfg = clientTLS(t, f, "", "")
			case goodCert:
				ccfg = clientTLS(t, f, f.ClientCert, f.ClientKey)
			case foreignCert:
				ccfg = clientTLS(t, f, foreign.ClientCert, foreign.ClientKey)
			}
			raw := dial(t, s.addr())
			c := tls.Client(raw, ccfg)
			clientHS := collect(c.Handshake)
			sc := s.accept(t)
			if got := PeerCertificates(sc); got != nil {
				t.Fatalf("PeerCertificates before the handshake = %d certs, want nil", len(got))
			}
			err := handshake(sc)
			if !tc.wantOK {
				if err == nil {
					t.Fatal("server handshake succeeded, want failure")
				}
				// TLS 1.3 clients learn of the refusal on their first read.
				if cerr := wait(t, clientHS); cerr == nil {
					_ = c.SetReadDeadline(time.Now().Add(waitLong))
					if _, rerr := c.Read(make([]byte, 1)); rerr == nil {
						t.Fatal("client read succeeded on a refused connection")
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("server handshake: %v", err)
			}
			if err := wait(t, clientHS); err != nil {
				t.Fatalf("client handshake: %v", err)
			}
			gotCN := ""
			if certs := PeerCertificates(sc); certs != nil {
				gotCN = certs[0].Subject.CommonName
			}
			if gotCN != tc.wantCN {
				t.Fatalf("peer certificate CN = %q, want %q", gotCN, tc.wantCN)
			}
			write(t, c, []byte("ping"))
			expectBytes(t, sc, []byte("ping"))
			write(t, sc, []byte("pong"))
			expectBytes(t, c, []byte("pong"))
		})
	}
}

// TestTLSAcceptDoesNotHandshake checks that a client that connects and
// says nothing does not stop the next one from being accepted and served,
// and that the handshake also happens lazily on the first Read.
func TestTLSAcceptDoesNotHandshake(t *testing.T) {
	f := certs(t)
	s := startServer(t, Config{Kind: KindTLS, TLS: serverTLS(t, f, "none", false)})
	_ = dial(t, s.addr()) // silent
	silent := s.accept(t)
	if _, ok := silent.(*tls.Conn); !ok {
		t.Fatalf("tls listener accepted a %T, want *tls.Conn", silent)
	}
	c := tls.Client(dial(t, s.addr()), clientTLS(t, f, "", ""))
	clientHS := collect(c.Handshake)
	sc := s.accept(t)
	// No Handshake call: Read drives it.
	read := collect(func() error {
		b, err := readFull(sc, 5)
		if err == nil && string(b) != "hello" {
			err = errors.New("read " + string(b))
		}
		return err
	})
	if err := wait(t, clientHS); err != nil {
		t.Fatal(err)
	}
	write(t, c, []byte("hello"))
	if err := wait(t, read); err != nil {
		t.Fatal(err)
	}
}

func TestLoadTLSModes(t *testing.T) {
	f := certs(t)
	cases := []struct {
		auth    string
		ca      string
		want    tls.ClientAuthType
		wantCAs bool
	}{
		{"", "", tls.NoClientCert, false},
		{"none", "", tls.NoClientCert, false},
		{"none", f.CA, tls.NoClientCert, false},
		{"request", "", tls.RequestClientCert, false},
		{"request", f.CA, tls.VerifyClientCertIfGiven, true},
		{"require", f.CA, tls.RequireAndVerifyClientCert, true},
	}
	for _, tc := range cases {
		cfg, err := LoadTLS(f.ServerCert, f.ServerKey, tc.ca, tc.auth)
		if err != nil {
			t.Fatalf("%q ca=%q: %v", tc.auth, tc.ca, err)
		}
		if cfg.ClientAuth != tc.want {
			t.Errorf("%q ca=%q: ClientAuth = %v, want %v", tc.auth, tc.ca, cfg.ClientAuth, tc.want)
		}
		if (cfg.ClientCAs != nil) != tc.wantCAs {
			t.Errorf("%q ca=%q: ClientCAs set = %v, want %v", tc.auth, tc.ca, cfg.ClientCAs != nil, tc.wantCAs)
		}
		if cfg.MinVersion != tls.VersionTLS12 {
			t.Errorf("MinVersion = %#x, want TLS 1.2", cfg.MinVersion)
		}
		if len(cfg.Certificates) != 1 {
			t.Errorf("%d certificates, want 1", len(cfg.Certificates))
		}
	}
}

func TestLoadTLSErrors(t *testing.T) {
	f := certs(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name                string
		cert, key, ca, auth string
		wantIs              error
		wantInMsg1, wantIn2 string
	}{
		{"missing cert", missing, f.ServerKey, "", "none", fs.ErrNotExist, missing, "certificate file"},
		{"missing key", f.ServerCert, missing, "", "none", fs.ErrNotExist, missing, "key file"},
		{"missing CA", f.ServerCert, f.ServerKey, missing, "require", fs.ErrNotExist, missing, "client CA file"},
		{"CA without PEM", f.ServerCert, f.ServerKey, garbage, "request", nil, garbage, "no PEM certificate"},
		{"key of another cert", f.ServerCert, f.ClientKey, "", "none", nil, f.ServerCert, f.ClientKey},
		{"garbage cert", garbage, f.ServerKey, "", "none", nil, garbage, "key pair"},
		{"require without CA", f.ServerCert, f.ServerKey, "", "require", ErrInvalidConfig, "client CA file", "require"},
		{"unknown mode", f.ServerCert, f.ServerKey, "", "optional", ErrInvalidConfig, `"optional"`, "none, request, require"},
	}
	for _, tc := range cases {
		_, err := LoadTLS(tc.cert, tc.key, tc.ca, tc.auth)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
			t.Errorf("%s: error %v does not wrap %v", tc.name, err, tc.wantIs)
		}
		for _, s := range []string{tc.wantInMsg1, tc.wantIn2} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, s)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	f := certs(t)
	good := serverTLS(t, f, "none", false)
	cases := []struct {
		cfg  Config
		want []string // substrings; nil means valid
	}{
		{Config{Kind: KindTCP, Addr: "127.0.0.1:0"}, nil},
		{Config{Kind: KindWS, Addr: ":1883"}, nil},
		{Config{Kind: KindWS, Addr: ":1883", TLS: good}, nil}, // TLS ignored
		{Config{Kind: KindTLS, Addr: ":8883", TLS: good}, nil},
		{Config{Kind: KindWSS, Addr: ":8443", TLS: good, Path: "/ws"}, nil},
		{Config{}, []string{"Kind: required", "Addr: required"}},
		{Config{Kind: "quic", Addr: ":1"}, []string{`Kind: "quic" is not one of`}},
		{Config{Kind: KindTCP, Addr: "localhost"}, []string{`Addr: "localhost" is not host:port`}},
		{Config{Kind: KindTLS, Addr: ":1"}, []string{"TLS: required for a tls listener"}},
		{Config{Kind: KindWSS, Addr: ":1", TLS: &tls.Config{}}, []string{"TLS: has no certificate"}},
		{Config{Kind: KindWS, Addr: ":1", Path: "mqtt", HandshakeTimeout: -time.Second},
			[]string{`Path: "mqtt" must start with /`, "HandshakeTimeout: -1s is negative"}},
	}
	for i, tc := range cases {
		err := tc.cfg.Validate()
		if tc.want == nil {
			if err != nil {
				t.Errorf("case %d: %v", i, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("case %d: error %v does not wrap ErrInvalidConfig", i, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("case %d: error %q does not contain %q", i, err, w)
			}
		}
		if _, lerr := Listen(tc.cfg); !errors.Is(lerr, ErrInvalidConfig) {
			t.Errorf("case %d: Listen error %v, want ErrInvalidConfig", i, lerr)
		}
	}
}

func TestListenAddressInUse(t *testing.T) {
	s := startServer(t, Config{Kind: KindTCP})
	_, err := Listen(Config{Kind: KindWS, Addr: s.addr(), Logger: quietLogger()})
	if err == nil || errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), s.addr()) {
		t.Fatalf("Listen on a used address: %v, want a listen error naming %s", err, s.addr())
	}
}

func TestListenerCloseUnblocksAccept(t *testing.T) {
	f := certs(t)
	for _, kind := range []string{KindTCP, KindTLS, KindWS, KindWSS} {
		for _, proxy := range []bool{false, true} {
			ln, err := Listen(Config{Kind: kind, Addr: "127.0.0.1:0", TLS: serverTLS(t, f, "none", false),
				ProxyProtocol: proxy, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			accepted := collect(func() error { _, err := ln.Accept(); return err })
			time.Sleep(20 * time.Millisecond) // let Accept block
			if err := ln.Close(); err != nil {
				t.Errorf("%s proxy=%v: Close: %v", kind, proxy, err)
			}
			if err := wait(t, accepted); !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s proxy=%v: Accept after Close: %v, want net.ErrClosed", kind, proxy, err)
			}
			if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s proxy=%v: second Accept: %v, want net.ErrClosed", kind, proxy, err)
			}
			if err := ln.Close(); err != nil {
				t.Errorf("%s proxy=%v: second Close: %v, want nil", kind, proxy, err)
			}
		}
	}
}
