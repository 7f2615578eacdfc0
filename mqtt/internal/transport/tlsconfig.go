package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// LoadTLS builds the server configuration of a "tls" or "wss" listener from
// PEM files: certFile holds the server certificate chain (leaf first),
// keyFile its private key, and clientCAFile (optional) the CAs that verify
// client certificates. clientAuth is one of
//
//	"none" (or "")  no client certificate is asked for; clientCAFile, when
//	                given, is loaded (so a bad file is reported) but unused
//	"request"       a client certificate is asked for but optional; one that
//	                is sent is verified against clientCAFile when given
//	                (tls.VerifyClientCertIfGiven), else accepted unverified
//	                (tls.RequestClientCert) for the auth provider to judge
//	"require"       a certificate verified against clientCAFile is required
//	                (tls.RequireAndVerifyClientCert); clientCAFile is required
//
// The configuration allows TLS 1.2 and later. Errors name the file that
// failed and wrap the cause (for example fs.ErrNotExist); a bad clientAuth
// or a missing clientCAFile wraps ErrInvalidConfig.
func LoadTLS(certFile, keyFile, clientCAFile, clientAuth string) (*tls.Config, error) {
	var auth tls.ClientAuthType
	switch clientAuth {
	case "", "none":
		auth = tls.NoClientCert
	case "request":
		auth = tls.RequestClientCert
		if clientCAFile != "" {
			auth = tls.VerifyClientCertIfGiven
		}
	case "require":
		if clientCAFile == "" {
			return nil, fmt.Errorf("%w: client auth %q needs a client CA file", ErrInvalidConfig, clientAuth)
		}
		auth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("%w: client auth %q is not one of none, request, require", ErrInvalidConfig, clientAuth)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("transport: read certificate file %q: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("transport: read key file %q: %w", keyFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("transport: load key pair from certificate file %q and key file %q: %w", certFile, keyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   auth,
	}
	if clientCAFile != "" {
		caPEM, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("transport: read client CA file %q: %w", clientCAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("transport: client CA file %q holds no PEM certificate", clientCAFile)
		}
		if auth != tls.NoClientCert {
			cfg.ClientCAs = pool
		}
	}
	return cfg, nil
}
