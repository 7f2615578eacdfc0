package mqtt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/bifromq-go/bifromq/mqtt/packet"
	"github.com/bifromq-go/bifromq/mqtt/settings"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// dragonboat's process-wide goroutines (see basekv's tests).
		goleak.IgnoreTopFunction("github.com/lni/goutils/syncutil.(*Stopper).runWorker.func1"),
		goleak.IgnoreAnyFunction("github.com/lni/dragonboat/v4/internal/logdb/kv/pebble.(*eventListener).notify"),
		goleak.IgnoreTopFunction("github.com/cockroachdb/pebble.(*DB).maybeScheduleCompactionPicker.func1"),
	)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// tenantSettings is a settings provider: the defaults changed by f, for
// every tenant.
func tenantSettings(t testing.TB, f func(*settings.Settings)) settings.Provider {
	t.Helper()
	d := settings.Defaults()
	f(&d)
	p, err := settings.NewStatic(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startServer starts a Server with one TCP listener on a free loopback port.
func startServer(t testing.TB, opts Options) *Server {
	t.Helper()
	if len(opts.Listeners) == 0 {
		opts.Listeners = []Listener{{Kind: TCP, Addr: "127.0.0.1:0"}}
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if opts.Router == nil {
		opts.Router, opts.Retain = newStores(t)
	}
	s, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// client is a raw TCP client that speaks bytes.
type client struct {
	t  testing.TB
	nc net.Conn
	rd *packet.Reader
	v  packet.Version
}

func dial(t testing.TB, s *Server) *client {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr(TCP).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, rd: packet.NewReader(nc, packet.MaxPacketSize), v: packet.V311}
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func (c *client) sendHex(s string) { c.t.Helper(); c.sendRaw(unhex(s)) }

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) send(p packet.Packet) {
	c.t.Helper()
	b, err := packet.Encode(p, c.v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

// expectHex reads one packet and compares its exact bytes.
func (c *client) expectHex(want string) {
	c.t.Helper()
	got := c.readRaw()
	if !bytes.Equal(got, unhex(want)) {
		c.t.Fatalf("got packet % x, want %s", got, want)
	}
}

func (c *client) readRaw() []byte {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, body, err := c.rd.ReadPacket()
	if err != nil {
		c.t.Fatalf("reading a packet: %v", err)
	}
	raw := []byte{byte(h.Type)<<4 | h.Flags}
	raw = append(raw, packetHeaderLen(h.Remaining)...)
	return append(raw, body...)
}

func packetHeaderLen(n int) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// read reads and decodes one packet.
func (c *client) read() packet.Packet {
	c.t.Helper()
	raw := c.readRaw()
	r := packet.NewReader(bytes.NewReader(raw), packet.MaxPacketSize)
	h, body, _ := r.ReadPacket()
	p, err := packet.Decode(h, body, c.v)
	if err != nil {
		c.t.Fatalf("decoding % x: %v", raw, err)
	}
	return p
}

// expectClosed waits for the server to close the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.nc.Read(buf)
	if err == nil {
		c.t.Fatalf("expected close, got % x", buf[:n])
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
		return
	}
	c.t.Fatalf("expected close, got %v", err)
}

func (c *client) connect(cp *packet.Connect) *packet.Connack {
	c.t.Helper()
	c.v = cp.Version
	c.send(cp)
	ack, ok := c.read().(*packet.Connack)
	if !ok {
		c.t.Fatal("first packet is not CONNACK")
	}
	return ack
}

const (
	connectV311 = "10 0e 00 04 4d 51 54 54 04 02 00 3c 00 02 63 31" // client "c1", clean, keep alive 60
	connectV31  = "10 10 00 06 4d 51 49 73 64 70 03 02 00 3c 00 02 63 31"
	connectV5   = "10 0f 00 04 4d 51 54 54 05 02 00 3c 00 00 02 63 31"
)

func TestV311Flows(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	c.sendHex(connectV311)
	c.expectHex("20 02 00 00") // accepted, no session present
	c.sendHex("c0 00")
	c.expectHex("d0 00") // PINGRESP
	c.sendHex("30 05 00 01 61 68 69")
	c.sendHex("32 07 00 01 61 00 05 68 69") // QoS 1, id 5
	c.expectHex("40 02 00 05")
	c.sendHex("34 07 00 01 61 00 06 68 69") // QoS 2, id 6
	c.expectHex("50 02 00 06")
	c.sendHex("3c 07 00 01 61 00 06 68 69") // resent with DUP before PUBREL
	c.expectHex("50 02 00 06")
	c.sendHex("62 02 00 06")
	c.expectHex("70 02 00 06")
	// SUBSCRIBE: granted QoS per filter; an invalid filter gets 0x80.
	c.sendHex("82 0f 00 07 00 03 61 2f 23 02 00 04 61 23 2f 62 01")
	c.expectHex("90 04 00 07 02 80")
	c.sendHex("a2 07 00 08 00 03 61 2f 23")
	c.expectHex("b0 02 00 08")
	c.sendHex("e0 00")
	c.expectClosed()
}

func TestV31Connect(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	c.sendHex(connectV31)
	c.expectHex("20 02 00 00")
	c.sendHex("c0 00")
	c.expectHex("d0 00")
}

func TestV5Flows(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	c.v = packet.V5
	c.sendHex(connectV5)
	// CONNACK: success with receive maximum 200, maximum packet size 1 MiB,
	// topic alias maximum 10.
	c.expectHex("20 0e 00 00 0b 21 00 c8 22 00 0a 27 00 10 00 00")
	c.sendHex("32 08 00 01 61 00 05 00 68 69")
	c.expectHex("40 03 00 05 10") // PUBACK: no matching subscribers
	c.sendHex("34 08 00 01 61 00 06 00 68 69")
	c.expectHex("50 03 00 06 10")
	c.sendHex("62 02 00 06")
	c.expectHex("70 02 00 06")
	c.sendHex("62 02 00 09") // PUBREL of an unknown id
	c.expectHex("70 03 00 09 92")
	// SUBSCRIBE with options: valid, invalid filter -> 0x8F.
	c.sendHex("82 0e 00 07 00 00 03 61 2f 23 2e 00 02 61 23 01")
	c.expectHex("90 05 00 07 00 02 8f")
	c.sendHex("a2 0a 00 08 00 00 01 61 00 02 2b 2b")
	c.expectHex("b0 05 00 08 00 11 8f")
	// Topic alias 1 set, then used alone.
	c.sendHex("30 08 00 01 61 03 23 00 01 78")
	c.sendHex("30 07 00 00 03 23 00 01 79")
	c.sendHex("c0 00")
	c.expectHex("d0 00")
	c.sendHex("e0 00")
	c.expectClosed()
}

func TestV5AssignedClientID(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	ack := c.connect(&packet.Connect{Version: packet.V5, CleanStart: true})
	if ack.ReasonCode != packet.Success || !strings.HasPrefix(ack.Properties.AssignedClientID, "auto-") {
		t.Fatalf("CONNACK %+v", ack)
	}
	// 3.1.1: an empty id needs a clean session (MQTT-3.1.3-8).
	c2 := dial(t, s)
	c2.sendHex("10 0c 00 04 4d 51 54 54 04 00 00 3c 00 00")
	c2.expectHex("20 02 00 02")
	c2.expectClosed()
	c3 := dial(t, s)
	c3.sendHex("10 0c 00 04 4d 51 54 54 04 02 00 3c 00 00")
	c3.expectHex("20 02 00 00")
}

func TestV5SessionExpiryNotKept(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	ack := c.connect(&packet.Connect{Version: packet.V5, ClientID: "p", Properties: packet.Properties{SessionExpiry: 300}})
	if !ack.Properties.Has(packet.PropSessionExpiry) || ack.Properties.SessionExpiry != 0 || ack.SessionPresent {
		t.Fatalf("CONNACK %+v: want session expiry 0 announced", ack)
	}
}

func TestUnsupportedVersion(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	c.sendHex("10 0c 00 04 4d 51 54 54 06 02 00 3c 00 00")
	c.expectHex("20 02 00 01")
	c.expectClosed()
	// An unknown protocol name gets no answer.
	c2 := dial(t, s)
	c2.sendHex("10 0c 00 04 58 58 58 58 04 02 00 3c 00 00")
	c2.expectClosed()
}

func TestFirstPacketNotConnect(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	c.sendHex("c0 00")
	c.expectClosed()
}

func TestV5BadConnectGetsReasonCode(t *testing.T) {
	s := startServer(t, Options{})
	for _, tc := range []struct {
		name, hex string
		want      packet.ReasonCode
	}{
		{"receive maximum 0", "10 10 00 04 4d 51 54 54 05 02 00 3c 03 21 00 00 00 00", packet.ProtocolError},
		{"reserved flag", "10 0d 00 04 4d 51 54 54 05 03 00 3c 00 00 00", packet.MalformedPacket},
		{"auth method", "10 14 00 04 4d 51 54 54 05 02 00 3c 05 15 00 02 58 59 00 02 63 31", packet.BadAuthenticationMethod},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s)
			c.v = packet.V5
			c.sendHex(tc.hex)
			ack, ok := c.read().(*packet.Connack)
			if !ok || ack.ReasonCode != tc.want {
				t.Fatalf("got %+v, want CONNACK %v", ack, tc.want)
			}
			c.expectClosed()
		})
	}
}

func TestV5ViolationsDisconnect(t *testing.T) {
	s := startServer(t, Options{MaxPacketSize: 128, Settings: tenantSettings(t, func(st *settings.Settings) {
		st.ReceivingMaximum, st.MaxTopicAlias = 2, 2
	})})
	for _, tc := range []struct {
		name, hex string
		want      packet.ReasonCode
	}{
		{"second CONNECT", connectV5, packet.ProtocolError},
		{"malformed PUBLISH", "36 03 00 01 61", packet.MalformedPacket},
		{"packet too large", "30 81 01 00 01 61 00" + strings.Repeat(" 78", 125), packet.PacketTooLarge},
		{"topic alias over maximum", "30 07 00 01 61 03 23 00 03", packet.TopicAliasInvalid},
		{"unknown topic alias", "30 06 00 00 03 23 00 01", packet.ProtocolError},
		{"topic name with wildcard", "30 04 00 01 23 00", packet.TopicNameInvalid},
		{"subscription id from client", "30 06 00 01 61 02 0b 01", packet.ProtocolError},
		{"receive maximum exceeded", "34 06 00 01 61 00 01 00 34 06 00 01 61 00 02 00 34 06 00 01 61 00 03 00", packet.ReceiveMaximumExceeded},
		{"no local on shared subscription", "82 10 00 01 00 00 0a 24 73 68 61 72 65 2f 67 2f 61 04", packet.ProtocolError},
		{"session expiry after 0", "e0 07 00 05 11 00 00 00 0a", packet.ProtocolError},
		{"AUTH without method", "f0 00", packet.ProtocolError},
		{"SUBACK from a client", "90 03 00 01 00", packet.ProtocolError},
		{"reserved type", "00 00", packet.MalformedPacket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s)
			c.connect(&packet.Connect{Version: packet.V5, ClientID: "v"})
			c.sendHex(tc.hex)
			var d *packet.Disconnect
			for d == nil {
				switch p := c.read().(type) {
				case *packet.Disconnect:
					d = p
				case *packet.Pubrec:
				default:
					t.Fatalf("unexpected %s", p.Type())
				}
			}
			if d.ReasonCode != tc.want {
				t.Fatalf("DISCONNECT %v (%q), want %v", d.ReasonCode, d.Properties.ReasonString, tc.want)
			}
			c.expectClosed()
		})
	}
}

func TestV3ViolationsClose(t *testing.T) {
	s := startServer(t, Options{MaxPacketSize: 128})
	for _, tc := range []struct{ name, hex string }{
		{"second CONNECT", connectV311},
		{"malformed", "36 03 00 01 61"},
		{"too large", "30 81 01 00 01 61" + strings.Repeat(" 78", 126)},
		{"AUTH", "f0 00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s)
			c.sendHex(connectV311)
			c.expectHex("20 02 00 00")
			c.sendHex(tc.hex)
			c.expectClosed()
		})
	}
}

func TestConnectTimeout(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Options{ConnectTimeout: 200 * time.Millisecond, Registerer: reg})
	c := dial(t, s)
	c.sendHex("10 0e 00 04") // half a CONNECT, then nothing
	c.expectClosed()
	waitFor(t, func() bool {
		return gathered(t, reg, `bifromq_mqtt_connections_rejected_total{reason="connect_timeout"}`) == 1
	})
}

func TestKeepAlive(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	c.sendHex("10 0e 00 04 4d 51 54 54 04 02 00 01 00 02 63 31") // keep alive 1 s
	c.expectHex("20 02 00 00")
	start := time.Now()
	c.expectClosed()
	if d := time.Since(start); d < time.Second {
		t.Fatalf("closed after %v, before 1.5 x keep alive", d)
	}
	c5 := dial(t, s)
	c5.connect(&packet.Connect{Version: packet.V5, ClientID: "k", KeepAlive: 1})
	c5.expectHex("e0 01 8d") // keep alive timeout; problem info requested by default
	c5.expectClosed()
}

func TestKeepAlivePingKeepsConnection(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	c.sendHex("10 0e 00 04 4d 51 54 54 04 02 00 01 00 02 63 31") // keep alive 1 s
	c.expectHex("20 02 00 00")
	for i := 0; i < 4; i++ {
		time.Sleep(600 * time.Millisecond)
		c.sendHex("c0 00")
		c.expectHex("d0 00")
	}
}

func TestMaxKeepAlive(t *testing.T) {
	s := startServer(t, Options{MaxKeepAlive: 5})
	c := dial(t, s)
	ack := c.connect(&packet.Connect{Version: packet.V5, ClientID: "k", KeepAlive: 0})
	if ack.Properties.ServerKeepAlive != 5 {
		t.Fatalf("server keep alive %d, want 5", ack.Properties.ServerKeepAlive)
	}
	c3 := dial(t, s)
	c3.sendHex(connectV311) // keep alive 60 > 5
	c3.expectHex("20 02 00 02")
	c3.expectClosed()
}

func TestMaxConnections(t *testing.T) {
	s := startServer(t, Options{MaxConnections: 2})
	a, b := dial(t, s), dial(t, s)
	a.sendHex(connectV311)
	a.expectHex("20 02 00 00")
	b.connect(&packet.Connect{Version: packet.V5, ClientID: "b"})
	c := dial(t, s)
	ack := c.connect(&packet.Connect{Version: packet.V5, ClientID: "c"})
	if ack.ReasonCode != packet.QuotaExceeded {
		t.Fatalf("CONNACK %v, want quota exceeded", ack.ReasonCode)
	}
	c.expectClosed()
	d := dial(t, s)
	d.sendHex(connectV311)
	d.expectHex("20 02 00 03") // server unavailable
	d.expectClosed()
	// A freed slot is usable again.
	a.sendHex("e0 00")
	a.expectClosed()
	waitFor(t, func() bool { return s.Connections() == 1 })
	e := dial(t, s)
	e.sendHex(connectV311)
	e.expectHex("20 02 00 00")
}

func TestConnectRate(t *testing.T) {
	s := startServer(t, Options{ConnectRate: 10, ConnectBurst: 1})
	start := time.Now()
	for i := 0; i < 6; i++ {
		c := dial(t, s)
		c.sendHex(connectV311)
		c.expectHex("20 02 00 00")
	}
	// Five tokens at 10/s take at least 0.5 s after the burst of one.
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("6 connections at 10/s took %v", d)
	}
}

func TestGracefulShutdown(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Options{Registerer: reg})
	c5 := dial(t, s)
	c5.connect(&packet.Connect{Version: packet.V5, ClientID: "five"})
	c3 := dial(t, s)
	c3.sendHex(connectV311)
	c3.expectHex("20 02 00 00")
	pending := dial(t, s) // connected at TCP level only
	waitFor(t, func() bool { return s.Connections() == 3 })
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	if d, ok := c5.read().(*packet.Disconnect); !ok || d.ReasonCode != packet.ServerShuttingDown {
		t.Fatalf("got %+v, want DISCONNECT 0x8B", d)
	}
	c5.expectClosed()
	c3.expectClosed()
	pending.expectClosed()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if _, err := net.Dial("tcp", s.Addr(TCP).String()); err == nil {
		t.Fatal("listener still accepts after Close")
	}
	s.Close() // idempotent
	if err := s.Start(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
}

// TestShutdownRightAfterConnack: a server closing just as a client's
// CONNACK goes out still says DISCONNECT 0x8B to it (it had closed such a
// connection without a word when the shutdown came between the CONNACK
// and the connection's connected mark: within ~20 tries).
func TestShutdownRightAfterConnack(t *testing.T) {
	for i := range 50 {
		s := startServer(t, Options{})
		c := dial(t, s)
		c.connect(v5Connect("early", packet.Properties{}))
		go s.Close()
		if d, ok := c.read().(*packet.Disconnect); !ok || d.ReasonCode != packet.ServerShuttingDown {
			t.Fatalf("try %d: got %+v, want DISCONNECT 0x8B", i, d)
		}
		c.nc.Close()
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Options{Registerer: reg})
	c := dial(t, s)
	c.sendHex(connectV311)
	c.expectHex("20 02 00 00")
	c.sendHex("c0 00")
	c.expectHex("d0 00")
	c.sendHex("36 03 00 01 61")
	c.expectClosed()
	waitFor(t, func() bool { return s.Connections() == 0 })
	for name, want := range map[string]float64{
		`bifromq_mqtt_packets_received_total{type="PINGREQ"}`:         1,
		`bifromq_mqtt_packets_sent_total{type="PINGRESP"}`:            1,
		`bifromq_mqtt_packets_sent_total{type="CONNACK"}`:             1,
		`bifromq_mqtt_decode_errors_total{reason="malformed packet"}`: 1,
		`bifromq_mqtt_connections{listener="tcp"}`:                    0,
		`bifromq_mqtt_connections_accepted_total{listener="tcp"}`:     1,
	} {
		if got := gathered(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := gathered(t, reg, "bifromq_mqtt_received_bytes_total"); got != 16+2+5 {
		t.Errorf("received bytes %v, want 23", got)
	}
}

// gathered returns the value of one series, written as name{labels}.
func gathered(t *testing.T, reg *prometheus.Registry, series string) float64 {
	t.Helper()
	v, ok := lookup(t, reg, series)
	if !ok {
		t.Fatalf("no series %s", series)
	}
	return v
}

func lookup(t *testing.T, reg *prometheus.Registry, series string) (float64, bool) {
	t.Helper()
	name, labels, _ := strings.Cut(series, "{")
	labels = strings.TrimSuffix(labels, "}")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
			}
			if strings.Join(parts, ",") != labels {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOptionsValidate(t *testing.T) {
	o := Options{
		Listeners: []Listener{{Kind: "udp", Addr: ""}, {Kind: TLS, Addr: "x:1"},
			{Kind: WSS, Addr: "x:2", TLS: TLSFiles{CertFile: "c", KeyFile: "k", ClientAuth: ClientAuthRequire}}},
		MaxPacketSize: 10, MaxConnections: -1,
	}
	o.EnsureDefaults()
	err := o.Validate()
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"Listeners[0].Kind", "Listeners[0].Addr", "Listeners[1].TLS.CertFile",
		"Listeners[1].TLS.KeyFile", "Listeners[2].TLS.ClientCAFile", "MaxPacketSize", "MaxConnections"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

// TestClientMaximumPacketSize checks that a packet over the v5 client's
// Maximum Packet Size loses its reason string rather than being sent too
// large (MQTT-3.1.2-25).
func TestClientMaximumPacketSize(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	// The CONNACK (16 bytes) fits in 20.
	c.connect(&packet.Connect{Version: packet.V5, ClientID: "small", Properties: packet.Properties{MaximumPacketSize: 20}})
	c.sendHex(connectV5) // a second CONNECT: DISCONNECT 0x82 with a long reason string
	c.expectHex("e0 01 82")
	c.expectClosed()
	// A limit the CONNACK cannot meet ends the connection without one.
	c2 := dial(t, s)
	c2.v = packet.V5
	c2.send(&packet.Connect{Version: packet.V5, ClientID: "tiny", Properties: packet.Properties{MaximumPacketSize: 8}})
	c2.expectClosed()
}
