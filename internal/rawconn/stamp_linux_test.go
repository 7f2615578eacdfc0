package rawconn

import (
	"io"
	"testing"
	"time"
)

// TestReadStamp: with StampReads, a Read reports when its bytes reached
// the socket, not when they were read; the bytes and EOF are as without.
func TestReadStamp(t *testing.T) {
	c, s := pair(t)
	buf := make([]byte, 16)
	if _, err := s.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		t.Fatal(err)
	}
	if got := c.ReadStamp(); got != 0 {
		t.Fatalf("ReadStamp without StampReads = %d, want 0", got)
	}
	if err := c.StampReads(); err != nil {
		t.Fatal(err)
	}
	// The kernel turns receive timestamps on asynchronously: the first
	// segments after StampReads may carry none.
	for i := 0; c.ReadStamp() == 0; i++ {
		if i == 200 {
			t.Fatal("no receive time after 200 reads")
		}
		if _, err := s.Write([]byte("w")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:1]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	for i, msg := range []string{"first", "second"} {
		before := time.Now().UnixNano()
		if _, err := s.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond) // the read comes well after the arrival
		readAt := time.Now().UnixNano()
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != msg {
			t.Fatalf("read %d: %q, %v; want %q", i, buf[:n], err, msg)
		}
		at := c.ReadStamp()
		if at < before || at > readAt {
			t.Fatalf("read %d: stamp %d not between the write (%d) and the read (%d)", i, at, before, readAt)
		}
	}
	s.Close()
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after the peer closed: %d, %v; want io.EOF", n, err)
	}
}
