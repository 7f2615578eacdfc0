package dist

import (
	"reflect"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/mqtt/packet"
)

func TestMessageEncoding(t *testing.T) {
	for _, m := range []*Message{
		{Topic: "a"},
		{Topic: "a/b/c", Payload: []byte("hello"), QoS: 2, Retain: true, Publisher: "c1",
			Expires: time.UnixMilli(1_800_000_000_123), Props: &Props{PayloadFormat: 1, ContentType: "text/plain",
				ResponseTopic: "r/t", CorrelationData: []byte{0, 1, 2},
				User: []packet.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}}}},
		{Topic: "u", Props: &Props{User: []packet.UserProperty{{Key: "only", Value: "user"}}}},
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Message
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, m) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, *m)
		}
		// Every truncation is an error, never a panic.
		for i := 0; i < len(b); i++ {
			var x Message
			if err := x.UnmarshalBinary(b[:i]); err == nil {
				t.Fatalf("truncated to %d bytes: no error", i)
			}
		}
	}
}

func FuzzMessageUnmarshal(f *testing.F) {
	m := &Message{Topic: "t", Payload: []byte("p"), Props: &Props{User: []packet.UserProperty{{Key: "a", Value: "b"}}}}
	b, _ := m.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if m.UnmarshalBinary(b) != nil {
			return
		}
		again, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var m2 Message
		if err := m2.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-encoding changed the message: %v", err)
		}
	})
}
