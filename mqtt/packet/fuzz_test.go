package packet

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary streams to the Reader and the decoder. The
// first byte picks the protocol version. Properties checked: no panic; a
// packet over the limit is refused; every error carries a failure reason
// code; whatever decodes also encodes, and the encoding decodes to the
// same encoding again (a canonical round trip).
//
//	go test ./mqtt/packet -run '^$' -fuzz FuzzDecode -fuzztime 60s
func FuzzDecode(f *testing.F) {
	for _, g := range readCorpus(f) {
		f.Add(append([]byte{byte(g.v - 3)}, g.raw...))
	}
	for _, m := range malformed {
		raw, _ := hex.DecodeString(strings.ReplaceAll(m.hex, " ", ""))
		f.Add(append([]byte{byte(m.v - 3)}, raw...))
	}
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		v := Version(3 + data[0]%3)
		r := NewReader(bytes.NewReader(data[1:]), limit)
		defer r.Release()
		for i := 0; i < 16; i++ {
			h, body, err := r.ReadPacket()
			if err != nil {
				return
			}
			if h.Len()+len(body) > limit {
				t.Fatalf("a packet of %d bytes passed the limit of %d", h.Len()+len(body), limit)
			}
			p, err := Decode(h, body, v)
			if err != nil {
				if _, ok := err.(*Error); !ok || !CodeOf(err).IsError() {
					t.Fatalf("error %v (%T) carries no failure code", err, err)
				}
				continue
			}
			ev := v
			if c, ok := p.(*Connect); ok {
				ev = c.Version
			}
			out, err := Encode(p, ev)
			if err != nil {
				t.Fatalf("decoded %s but cannot encode it: %v", dump(p), err)
			}
			p2, err := decodeOne(t, out, ev, MaxPacketSize)
			if err != nil {
				t.Fatalf("re-decoding %s (%x): %v", dump(p), out, err)
			}
			out2, err := Encode(p2, ev)
			if err != nil || !bytes.Equal(out, out2) {
				t.Fatalf("round trip differs: %x then %x (%v)", out, out2, err)
			}
		}
	})
}
