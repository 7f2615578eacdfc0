// Package testcert writes a throwaway PKI for tests: a self-signed CA, a
// server certificate for 127.0.0.1, ::1 and localhost, and a client
// certificate, all signed by the CA, as PEM files. Every call makes a new
// CA, so certificates of two calls do not verify each other (useful for
// "wrong CA" cases). Keys are ECDSA P-256, cheap to generate.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files are the paths of the PEM files Generate wrote.
type Files struct {
	CA         string // ca.pem: the CA certificate
	ServerCert string // server.pem: server certificate (leaf only)
	ServerKey  string // server.key: its private key, PKCS #8
	ClientCert string // client.pem: client certificate, subject CN "client"
	ClientKey  string // client.key: its private key, PKCS #8
}

// ServerName is a DNS name the server certificate is valid for, besides
// the IP addresses 127.0.0.1 and ::1.
const ServerName = "localhost"

// ClientCommonName is the subject common name of the client certificate.
const ClientCommonName = "client"

// Generate creates a fresh CA, server and client certificate in dir (which
// must exist) and returns their paths. The certificates are valid from an
// hour ago for a year.
func Generate(dir string) (Files, error) {
	f := Files{
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server.key"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client.key"),
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Files{}, fmt.Errorf("testcert: CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "testcert CA", Organization: []string{"bifromq-go test"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, caCert, err := sign(caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return Files{}, fmt.Errorf("testcert: CA certificate: %w", err)
	}
	if err := writePEM(f.CA, "CERTIFICATE", caDER); err != nil {
		return Files{}, err
	}
	leaves := []struct {
		tmpl     *x509.Certificate
		cert     string
		keyFile  string
		purposes []x509.ExtKeyUsage
	}{
		{&x509.Certificate{
			Subject:     pkix.Name{CommonName: ServerName},
			DNSNames:    []string{ServerName},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}, f.ServerCert, f.ServerKey, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{&x509.Certificate{
			Subject: pkix.Name{CommonName: ClientCommonName},
		}, f.ClientCert, f.ClientKey, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	}
	for _, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return Files{}, fmt.Errorf("testcert: key for %s: %w", l.cert, err)
		}
		l.tmpl.NotBefore = now.Add(-time.Hour)
		l.tmpl.NotAfter = now.Add(365 * 24 * time.Hour)
		l.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		l.tmpl.ExtKeyUsage = l.purposes
		der, _, err := sign(l.tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return Files{}, fmt.Errorf("testcert: certificate %s: %w", l.cert, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return Files{}, fmt.Errorf("testcert: marshal key %s: %w", l.keyFile, err)
		}
		if err := writePEM(l.cert, "CERTIFICATE", der); err != nil {
			return Files{}, err
		}
		if err := writePEM(l.keyFile, "PRIVATE KEY", keyDER); err != nil {
			return Files{}, err
		}
	}
	return f, nil
}

func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return der, cert, err
}

func writePEM(path, typ string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("testcert: write %s: %w", path, err)
	}
	return nil
}
