package rawconn

import (
	"syscall"
	"unsafe"
)

// StampReads makes every later Read also take the kernel's receive time of
// the bytes it returns (SO_TIMESTAMPNS), which ReadStamp then reports: the
// moment the data reached the socket, free of the reader's own scheduling
// delay. A read that returns the bytes of several segments carries the
// time of the last one (TCP keeps one time per read). The kernel turns
// timestamping on asynchronously, so the first reads after the first
// StampReads of the system may carry none. Call it before the first Read,
// from the goroutine that reads.
func (c *Conn) StampReads() error {
	var serr error
	err := c.rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	c.stamp = true
	return nil
}

// ReadStamp returns the kernel's receive time, in Unix nanoseconds, of the
// bytes the last Read returned, or 0 when it is unknown (StampReads not
// called, or the kernel gave none). Only the goroutine that reads may call
// it.
func (c *Conn) ReadStamp() int64 { return c.lastStamp }

// recvStamped reads into p with recvmsg and keeps the receive time the
// kernel attaches (SCM_TIMESTAMPNS); a read without one leaves 0.
func (c *Conn) recvStamped(fd uintptr, p []byte) (uintptr, syscall.Errno) {
	iov := syscall.Iovec{Base: &p[0]}
	iov.SetLen(len(p))
	var oob [64]byte
	msg := syscall.Msghdr{Iov: &iov, Iovlen: 1, Control: &oob[0]}
	msg.SetControllen(len(oob))
	n, _, e := syscall.RawSyscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msg)), 0)
	if e != 0 {
		return 0, e
	}
	c.lastStamp = 0
	ctl := oob[:msg.Controllen]
	for len(ctl) >= syscall.SizeofCmsghdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&ctl[0]))
		l := int(h.Len)
		if l < syscall.SizeofCmsghdr || l > len(ctl) {
			break
		}
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SCM_TIMESTAMPNS &&
			l >= syscall.SizeofCmsghdr+int(unsafe.Sizeof(syscall.Timespec{})) {
			ts := (*syscall.Timespec)(unsafe.Pointer(&ctl[syscall.SizeofCmsghdr]))
			c.lastStamp = ts.Nano()
		}
		al := (l + int(unsafe.Sizeof(uintptr(0))) - 1) &^ (int(unsafe.Sizeof(uintptr(0))) - 1)
		if al >= len(ctl) {
			break
		}
		ctl = ctl[al:]
	}
	return n, 0
}
