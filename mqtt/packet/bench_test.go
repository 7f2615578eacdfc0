package packet

import (
	"bytes"
	"testing"
)

func benchPublish(v Version) *Publish {
	p := &Publish{QoS: 1, PacketID: 42, Topic: []byte("devices/0042/telemetry/temperature"),
		Payload: bytes.Repeat([]byte("x"), 64)}
	if v == V5 {
		p.Properties.MessageExpiry = 60
		p.Properties.TopicAlias = 4
		p.Properties.PayloadFormat = 1
	}
	return p
}

// BenchmarkDecodePublish decodes a PUBLISH into a reused struct, as a
// connection's read loop does. Target: 0 allocs/op.
func BenchmarkDecodePublish(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run(v.String(), func(b *testing.B) {
			raw, err := Encode(benchPublish(v), v)
			if err != nil {
				b.Fatal(err)
			}
			var h FixedHeader
			h.Flags = raw[0] & 0x0f
			rem, n, _ := decodeVarint(raw[1:])
			body := raw[1+n:]
			_ = rem
			var p Publish
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := p.Unpack(h.Flags, body, v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadPublish frames and decodes PUBLISH packets from a stream
// through a Reader. Target: 0 allocs/op.
func BenchmarkReadPublish(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run(v.String(), func(b *testing.B) {
			raw, _ := Encode(benchPublish(v), v)
			stream := bytes.Repeat(raw, 256)
			src := bytes.NewReader(stream)
			r := NewReader(src, 1<<20)
			defer r.Release()
			var p Publish
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h, body, err := r.ReadPacket()
				if err != nil {
					src.Reset(stream)
					if h, body, err = r.ReadPacket(); err != nil {
						b.Fatal(err)
					}
				}
				if err := p.Unpack(h.Flags, body, v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodePublish appends a PUBLISH to a reused buffer. Target: 0
// allocs/op.
func BenchmarkEncodePublish(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run(v.String(), func(b *testing.B) {
			p := benchPublish(v)
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var err error
				if buf, err = p.Append(buf[:0], v); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}
