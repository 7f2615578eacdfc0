package mqtt

import "unsafe"

// bytesOf views s as bytes without copying; the result must never be
// written (the encoder only reads it).
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
