package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bifromq-go/bifromq/testsuite/testcert"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLong bounds every wait of a test that should succeed quickly.
const waitLong = 5 * time.Second

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// certs writes a fresh PKI into a temporary directory.
func certs(t *testing.T) testcert.Files {
	t.Helper()
	f, err := testcert.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// clientTLS is a client configuration that trusts f's CA. cert, when not
// empty, is sent whatever CAs the server asks for.
func clientTLS(t *testing.T, f testcert.Files, certFile, keyFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate")
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: testcert.ServerName, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return cfg
}

// serverTLS loads f's server certificate with the given client auth.
func serverTLS(t *testing.T, f testcert.Files, clientAuth string, withCA bool) *tls.Config {
	t.Helper()
	ca := ""
	if withCA {
		ca = f.CA
	}
	cfg, err := LoadTLS(f.ServerCert, f.ServerKey, ca, clientAuth)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// server runs an accept loop over a listener and queues what it accepts.
type server struct {
	ln    net.Listener
	conns chan net.Conn
	done  chan error // receives Accept's final error
}

func startServer(t *testing.T, cfg Config) *server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	ln, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, conns: make(chan net.Conn, 16), done: make(chan error, 1)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				s.done <- err
				return
			}
			s.conns <- c
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-s.done
		close(s.conns)
		for c := range s.conns {
			_ = c.Close()
		}
	})
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

// accept returns the next accepted conn, closed at the end of the test.
func (s *server) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		t.Cleanup(func() { _ = c.Close() })
		return c
	case <-time.After(waitLong):
		t.Fatal("no connection accepted")
		return nil
	}
}

// dial opens a TCP connection closed at the end of the test.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// readN reads exactly n bytes from c under a deadline.
func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitLong))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

// readFull is readN for goroutines other than the test's.
func readFull(c net.Conn, n int) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(waitLong))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	_, err := io.ReadFull(c, b)
	return b, err
}

func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(waitLong))
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// expectBytes reads len(want) bytes from c and compares.
func expectBytes(t *testing.T, c net.Conn, want []byte) {
	t.Helper()
	if got := readN(t, c, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// expectClosed reads from c until it reports the peer closed it.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitLong))
	n, err := io.Copy(io.Discard, c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("want the peer to close the connection, got %v after %d bytes", err, n)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// handshake runs Handshake under a deadline.
func handshake(c net.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	return Handshake(ctx, c)
}

// proxyV2 builds a v2 header: command (0 LOCAL, 1 PROXY), family/transport
// byte and body.
func proxyV2(cmd, fam byte, body []byte) []byte {
	h := append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x20|cmd, fam, 0, 0)
	binary.BigEndian.PutUint16(h[14:], uint16(len(body)))
	return append(h, body...)
}

// inet4 and inet6 build v2 address blocks.
func inet4(src, dst string, sport, dport uint16) []byte {
	b := append(net.ParseIP(src).To4(), net.ParseIP(dst).To4()...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sport), dport)
}

func inet6(src, dst string, sport, dport uint16) []byte {
	b := append(net.ParseIP(src).To16(), net.ParseIP(dst).To16()...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sport), dport)
}

// collect runs f in a goroutine and returns a channel with its error.
func collect(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func wait(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitLong):
		t.Fatal("timed out")
		return nil
	}
}
