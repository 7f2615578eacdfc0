package inbox

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/bifromq-go/bifromq/dist"
)

// payloads of the kinds devices send: JSON telemetry, log text, and
// random bytes (already compressed or encrypted).
func payloads() map[string][]byte {
	rnd := rand.New(rand.NewPCG(1, 2))
	var js bytes.Buffer
	js.WriteString("[")
	for i := 0; js.Len() < 2048; i++ {
		fmt.Fprintf(&js, `{"ts":%d,"device":"sensor-%04d","temp":%.2f,"humidity":%.1f,"status":"ok"},`,
			1_800_000_000+i, rnd.IntN(10000), 20+rnd.Float64()*5, 40+rnd.Float64()*20)
	}
	js.WriteString("{}]")
	var text bytes.Buffer
	for text.Len() < 4096 {
		fmt.Fprintf(&text, "2026-11-26T01:%02d:%02d INFO gateway %d forwarded %d readings from zone %s\n",
			rnd.IntN(60), rnd.IntN(60), rnd.IntN(16), rnd.IntN(500), []string{"north", "south", "east"}[rnd.IntN(3)])
	}
	random := make([]byte, 1024)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	return map[string][]byte{"json-2KB": js.Bytes(), "text-4KB": text.Bytes(), "random-1KB": random, "small-64B": js.Bytes()[:64]}
}

func TestEntryRoundTripCompressed(t *testing.T) {
	for name, p := range payloads() {
		e := Entry{QoS: 1, IDs: []uint32{3}, Message: &dist.Message{Topic: "a/b", Payload: p, QoS: 1}}
		v, err := e.appendValue(nil)
		if err != nil {
			t.Fatal(err)
		}
		var got Entry
		if err := got.decodeValue(v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got.Message, e.Message) || got.QoS != 1 || got.IDs[0] != 3 {
			t.Fatalf("%s: round trip changed the entry", name)
		}
		t.Logf("%-10s payload %5d B, stored %5d B", name, len(p), len(v))
	}
}

// BenchmarkEntryCompression compares storing entries plain, with s2 (what
// the inbox does above compressMin) and with zstd: stored bytes and the
// cost per entry.
//
//	go test ./inbox -run '^$' -bench EntryCompression -benchmem
func BenchmarkEntryCompression(b *testing.B) {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	defer enc.Close()
	for name, p := range payloads() {
		m, _ := (&dist.Message{Topic: "a/b", Payload: p}).MarshalBinary()
		for _, c := range []struct {
			name string
			f    func([]byte) []byte
		}{
			{"plain", func(m []byte) []byte { return m }},
			{"s2", func(m []byte) []byte { return s2.Encode(nil, m) }},
			{"zstd", func(m []byte) []byte { return enc.EncodeAll(m, nil) }},
		} {
			b.Run(name+"/"+c.name, func(b *testing.B) {
				b.SetBytes(int64(len(m)))
				var out []byte
				for i := 0; i < b.N; i++ {
					out = c.f(m)
				}
				b.ReportMetric(float64(len(out))/float64(len(m)), "ratio")
			})
		}
	}
}
