package rawconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns a raw client connection and the server's end.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	rc, err := New(c.(*net.TCPConn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close(); s.Close() })
	return rc, s
}

func TestReadWrite(t *testing.T) {
	c, s := pair(t)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("peer read %q, %v", buf, err)
	}
	go s.Write([]byte("pong"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("raw read %q, %v", buf, err)
	}
	s.Close()
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after the peer closed: %d, %v; want io.EOF", n, err)
	}
}

func TestReadDeadline(t *testing.T) {
	c, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := c.Read(make([]byte, 8))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("returned after %v, before the deadline", d)
	}
}

func TestReadAfterClose(t *testing.T) {
	c, _ := pair(t)
	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 8)); done <- err }()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed connection: %v", err)
	}
}

// TestTryWriteFullSocket: TryWrite takes what the socket holds and never
// waits; Write waits for room and completes once the peer reads.
func TestTryWriteFullSocket(t *testing.T) {
	c, s := pair(t)
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	var sent int
	for i := 0; ; i++ {
		n, err := c.TryWrite(chunk)
		if err != nil {
			t.Fatal(err)
		}
		sent += n
		if n < len(chunk) {
			break // full
		}
		if i > 10000 {
			t.Fatal("the socket never filled")
		}
	}
	if n, err := c.TryWrite(chunk); err != nil || n != 0 {
		t.Fatalf("TryWrite on a full socket: %d, %v", n, err)
	}
	// Write waits until the peer drains, then writes all.
	wrote := make(chan error, 1)
	go func() { _, err := c.Write(chunk); wrote <- err }()
	select {
	case err := <-wrote:
		t.Fatalf("Write on a full socket returned at once: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	got, err := io.ReadAll(io.LimitReader(s, int64(sent+len(chunk))))
	if err != nil || len(got) != sent+len(chunk) {
		t.Fatalf("peer read %d of %d: %v", len(got), sent+len(chunk), err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	// A write deadline bounds a Write that cannot finish.
	for {
		if n, _ := c.TryWrite(chunk); n < len(chunk) {
			break
		}
	}
	c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Write(chunk); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past the deadline: %v", err)
	}
}

// TestNoAllocations: a read of data already there, and a write the socket
// takes, allocate nothing (a broker does one per packet burst).
func TestNoAllocations(t *testing.T) {
	c, s := pair(t)
	msg := []byte("0123456789")
	const runs = 100 // AllocsPerRun adds one warm-up run
	if _, err := s.Write(bytes.Repeat(msg, runs+1)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	reads := testing.AllocsPerRun(runs, func() {
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	})
	writes := testing.AllocsPerRun(runs, func() {
		if n, err := c.TryWrite(msg); n != len(msg) || err != nil {
			t.Fatalf("TryWrite: %d, %v", n, err)
		}
		if n, err := c.Write(msg); n != len(msg) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	})
	if reads != 0 || writes != 0 {
		t.Errorf("allocations per Read %.1f, per TryWrite+Write %.1f; want 0", reads, writes)
	}
	// What was written arrived, in order.
	got := make([]byte, 2*(runs+1)*len(msg))
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, bytes.Repeat(msg, 2*(runs+1))) {
		t.Fatalf("peer read %d bytes (%v), not the writes", len(got), err)
	}
}

// TestWriteAfterClose: a write on a closed connection reports nothing
// written, whatever the write before it wrote.
func TestWriteAfterClose(t *testing.T) {
	c, _ := pair(t)
	if n, err := c.TryWrite([]byte("first")); n != 5 || err != nil {
		t.Fatalf("TryWrite: %d, %v", n, err)
	}
	c.Close()
	if n, err := c.TryWrite([]byte("second")); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("TryWrite after Close: %d, %v; want 0, net.ErrClosed", n, err)
	}
	if n, err := c.Write([]byte("third")); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %d, %v; want 0, net.ErrClosed", n, err)
	}
}
