//go:build !linux

package rawconn

import (
	"errors"
	"syscall"
)

// StampReads is not supported here: receive times need Linux's
// SO_TIMESTAMPNS.
func (c *Conn) StampReads() error {
	return errors.New("rawconn: receive times need Linux (SO_TIMESTAMPNS)")
}

// ReadStamp returns 0: receive times are not supported here.
func (c *Conn) ReadStamp() int64 { return 0 }

func (c *Conn) recvStamped(fd uintptr, p []byte) (uintptr, syscall.Errno) { return 0, syscall.ENOSYS }
