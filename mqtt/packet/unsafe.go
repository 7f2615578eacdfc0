package packet

import "unsafe"

// unsafeBytes views s as bytes for read-only inspection; the result must
// never be written.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
