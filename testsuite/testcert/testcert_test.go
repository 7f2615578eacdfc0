package testcert

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
	"time"
)

func load(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE block", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGenerate(t *testing.T) {
	f, err := Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ca := load(t, f.CA)
	if !ca.IsCA {
		t.Fatal("CA certificate is not a CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	server := load(t, f.ServerCert)
	for _, name := range []string{"127.0.0.1", "::1", ServerName} {
		if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: "example.com"}); err == nil {
		t.Error("server certificate verifies for example.com")
	}
	client := load(t, f.ClientCert)
	if client.Subject.CommonName != ClientCommonName {
		t.Errorf("client CN = %q", client.Subject.CommonName)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if time.Until(server.NotAfter) < 300*24*time.Hour || time.Since(server.NotBefore) < 0 {
		t.Errorf("server certificate valid %v..%v", server.NotBefore, server.NotAfter)
	}
	for _, pair := range [][2]string{{f.ServerCert, f.ServerKey}, {f.ClientCert, f.ClientKey}} {
		if _, err := tls.LoadX509KeyPair(pair[0], pair[1]); err != nil {
			t.Errorf("%s + %s: %v", pair[0], pair[1], err)
		}
	}
	// A second call makes an unrelated CA.
	g, err := Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := load(t, g.ClientCert).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a second Generate's client certificate verifies against the first CA")
	}
}
