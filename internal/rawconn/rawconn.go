// Package rawconn reads and writes TCP connections with raw system calls,
// waiting in the runtime's network poller (under the connection's
// deadlines) only when the socket has nothing to read or no room to
// write.
//
// Why: Go's sockets are non-blocking, yet each Read and Write goes through
// the runtime's system-call bookkeeping, which wakes its monitor thread
// whenever the process turns busy after being idle. For a broker (or a
// load generator) that handles one small packet per wake-up on one CPU,
// those wake-ups, and the thread hand-offs they bring, cost more than the
// reads and writes themselves. A raw read or write of a non-blocking
// socket cannot block, so skipping the bookkeeping is safe.
//
// Conn's methods are safe for concurrent use as net.Conn's are; Write
// writes everything (waiting for room) like net.Conn.Write, TryWrite only
// what the socket takes at once.
package rawconn

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write use raw system calls.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	stamp     bool  // Read takes receive times (StampReads)
	lastStamp int64 // receive time of the last Read's bytes; used by the reading goroutine only
}

// New wraps c; it fails only when c has no file descriptor.
func New(c *net.TCPConn) (*Conn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &Conn{TCPConn: c, rc: rc}, nil
}

// Read reads what is there, waiting until something is (or the read
// deadline passes). It returns io.EOF when the peer has closed its side.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			var m uintptr
			var e syscall.Errno
			if c.stamp {
				m, e = c.recvStamped(fd, p)
			} else {
				m, _, e = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			}
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait until readable
			case 0:
				n = int(m)
			default:
				errno = e
			}
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errno}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p, waiting for room (until the write deadline).
func (c *Conn) Write(p []byte) (int, error) {
	n := 0
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
		m, e := writeNow(fd, p[n:])
		n += m
		if e != nil {
			werr = e
			return true
		}
		return n == len(p) // false: wait until writable
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return n, err
	}
	return n, nil
}

// TryWrite writes as much of p as the socket takes at once and returns
// how much that was; n < len(p) with a nil error means the socket is
// full. It never waits, and must not run concurrently with Write on the
// same connection (the caller serializes its writers).
func (c *Conn) TryWrite(p []byte) (int, error) {
	n := 0
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
		n, werr = writeNow(fd, p)
		return true // never wait
	})
	if err == nil {
		err = werr
	}
	return n, err
}

// writeNow writes p until it is written or the socket is full.
func writeNow(fd uintptr, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return n, nil
		case e != 0:
			return n, e
		case m == 0:
			return n, io.ErrShortWrite
		}
		n += int(m)
	}
	return n, nil
}
