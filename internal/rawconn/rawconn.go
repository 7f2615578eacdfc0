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
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write use raw system calls.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// One read and one write in flight at a time, each with its
	// arguments and results in the Conn and its callback bound once (in
	// New): a callback built per call, capturing its variables, would
	// allocate at every read and write.
	rmu    sync.Mutex
	rop    readOp
	readFn func(fd uintptr) bool
	wmu    sync.Mutex
	wop    writeOp
	wait   func(fd uintptr) bool // Write: until all of wop.p is written
	once   func(fd uintptr) bool // TryWrite: what the socket takes now

	stamp     bool  // Read takes receive times (StampReads)
	lastStamp int64 // receive time of the last Read's bytes; used by the reading goroutine only
}

// readOp is a Read's arguments and results, guarded by Conn.rmu.
type readOp struct {
	c     *Conn
	p     []byte
	n     int
	errno syscall.Errno
}

// writeOp is a Write's or TryWrite's, guarded by Conn.wmu.
type writeOp struct {
	p   []byte
	n   int
	err error
}

// New wraps c; it fails only when c has no file descriptor.
func New(c *net.TCPConn) (*Conn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	conn := &Conn{TCPConn: c, rc: rc}
	conn.rop.c = conn
	conn.readFn = conn.rop.read
	conn.wait = conn.wop.writeAll
	conn.once = conn.wop.writeOnce
	return conn, nil
}

// Read reads what is there, waiting until something is (or the read
// deadline passes). It returns io.EOF when the peer has closed its side.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rop.p, c.rop.n, c.rop.errno = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rop.n, c.rop.errno
	c.rop.p = nil
	c.rmu.Unlock()
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

// read is Read's callback: false means nothing to read yet (wait).
func (op *readOp) read(fd uintptr) bool {
	p := op.p
	for {
		var m uintptr
		var e syscall.Errno
		if op.c.stamp {
			m, e = op.c.recvStamped(fd, p)
		} else {
			m, _, e = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		}
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			op.n = int(m)
		default:
			op.errno = e
		}
		return true
	}
}

// Write writes all of p, waiting for room (until the write deadline).
func (c *Conn) Write(p []byte) (int, error) { return c.write(p, c.wait) }

// TryWrite writes as much of p as the socket takes at once and returns
// how much that was; n < len(p) with a nil error means the socket is
// full. It never waits.
func (c *Conn) TryWrite(p []byte) (int, error) { return c.write(p, c.once) }

// write runs f, Write's or TryWrite's callback, on p.
func (c *Conn) write(p []byte, f func(fd uintptr) bool) (int, error) {
	c.wmu.Lock()
	c.wop.p, c.wop.n, c.wop.err = p, 0, nil
	err := c.rc.Write(f)
	n := c.wop.n
	if err == nil {
		err = c.wop.err
	}
	c.wop.p, c.wop.err = nil, nil
	c.wmu.Unlock()
	return n, err
}

// writeAll is Write's callback: false means wait until writable.
func (op *writeOp) writeAll(fd uintptr) bool {
	m, err := writeNow(fd, op.p[op.n:])
	op.n += m
	if err != nil {
		op.err = err
		return true
	}
	return op.n == len(op.p)
}

// writeOnce is TryWrite's callback: it never waits.
func (op *writeOp) writeOnce(fd uintptr) bool {
	op.n, op.err = writeNow(fd, op.p)
	return true
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
