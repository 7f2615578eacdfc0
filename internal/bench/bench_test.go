package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bifromq-go/bifromq/mqtt"
	"github.com/bifromq-go/bifromq/mqtt/packet"
	"github.com/bifromq-go/bifromq/standalone"
	"github.com/bifromq-go/bifromq/testsuite"
	"github.com/bifromq-go/bifromq/testsuite/testcert"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// As in testsuite: the in-process broker's background goroutines
		// that outlive its Close briefly.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
	)
}

// summaryRE is the contract of the summary line.
var summaryRE = regexp.MustCompile(`^summary scenario=(conn|pub|sub) clients=\d+ connected=\d+ sent=\d+ received=\d+ ` +
	`errors=\d+ duration_s=\d+\.\d{3} rate=\d+\.\d p50_ms=\d+\.\d{3} p99_ms=\d+\.\d{3} ` +
	`p90_ms=\d+\.\d{3} p999_ms=\d+\.\d{3} max_ms=\d+\.\d{3}\n$`)

// result is the outcome of one bench run.
type result struct {
	code    int
	stderr  string
	summary map[string]string
}

func (r result) int(t *testing.T, key string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(r.summary[key], 10, 64)
	if err != nil {
		t.Fatalf("summary %s=%q: %v", key, r.summary[key], err)
	}
	return n
}

func (r result) float(t *testing.T, key string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(r.summary[key], 64)
	if err != nil {
		t.Fatalf("summary %s=%q: %v", key, r.summary[key], err)
	}
	return f
}

// runBench runs bench with args; ready, when set, is called once all
// clients are connected (and subscribed). It checks the stdout contract.
func runBench(t *testing.T, ctx context.Context, ready func(), args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	o, err := parseArgs(args)
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	o.ready = ready
	code := run(ctx, &o, &stdout, &stderr)
	res := result{code: code, stderr: stderr.String(), summary: map[string]string{}}
	out := stdout.String()
	if !summaryRE.MatchString(out) {
		t.Fatalf("%q: stdout %q is not one summary line (stderr %q)", args, out, res.stderr)
	}
	for _, kv := range strings.Fields(out)[1:] {
		k, v, _ := strings.Cut(kv, "=")
		res.summary[k] = v
	}
	return res
}

// tlsNode starts a broker with all four listeners; TLS and WSS use a
// throwaway CA, whose file it returns.
func tlsNode(t *testing.T) (*standalone.Node, string) {
	files, err := testcert.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testsuite.NodeConfig(t)
	cfg.API.Addr = standalone.Off
	cfg.MQTT.TLS.Addr = "127.0.0.1:0"
	cfg.MQTT.TLS.CertFile, cfg.MQTT.TLS.KeyFile = files.ServerCert, files.ServerKey
	cfg.MQTT.WSS.Addr = "127.0.0.1:0"
	cfg.MQTT.WSS.CertFile, cfg.MQTT.WSS.KeyFile = files.ServerCert, files.ServerKey
	return testsuite.StartNode(t, cfg), files.CA
}

func TestAgainstBroker(t *testing.T) {
	n, ca := tlsNode(t)
	port := func(k mqtt.ListenerKind) string { return strconv.Itoa(testsuite.Port(t, n, k)) }
	ctx := context.Background()

	for _, tc := range []struct {
		name    string
		args    []string
		subArgs []string // the subscriber's only
	}{
		{"v5 qos1 tcp", []string{"-V", "5", "-q", "1", "-p", port(mqtt.TCP)}, nil},
		{"v5 qos1 tcp rxtime", []string{"-V", "5", "-q", "1", "-p", port(mqtt.TCP)}, []string{"-rxtime"}},
		{"v3 qos1 tcp", []string{"-V", "3", "-q", "1", "-p", port(mqtt.TCP)}, nil},
		{"v5 qos2 ws", []string{"-V", "5", "-q", "2", "-ws", "-p", port(mqtt.WS)}, nil},
		{"v3 qos2 tls", []string{"-V", "3", "-q", "2", "-tls", "-cafile", ca, "-p", port(mqtt.TLS)}, nil},
		{"v5 qos0 wss", []string{"-V", "5", "-q", "0", "-tls", "-ws", "-insecure", "-p", port(mqtt.WSS)}, nil},
	} {
		t.Run("pub sub "+tc.name, func(t *testing.T) {
			topic := "e2e/" + strings.ReplaceAll(tc.name, " ", "-") + "/%i"
			subArgs := append([]string{"sub", "-c", "2", "-t", topic, "-expect", "1000", "-d", "15s", "-quiet",
				"-i", tc.name + "-sub-"}, slices.Concat(tc.args, tc.subArgs)...)
			pubArgs := append([]string{"pub", "-c", "2", "-t", topic, "-n", "500", "-d", "15s", "-quiet",
				"-i", tc.name + "-pub-"}, tc.args...)
			subscribed := make(chan struct{})
			var sub result
			var wg sync.WaitGroup
			wg.Go(func() { sub = runBench(t, ctx, func() { close(subscribed) }, subArgs...) })
			select {
			case <-subscribed:
			case <-time.After(10 * time.Second):
				t.Fatal("subscribers not ready")
			}
			pub := runBench(t, ctx, nil, pubArgs...)
			wg.Wait()

			if pub.code != 0 || pub.summary["scenario"] != "pub" || pub.int(t, "connected") != 2 ||
				pub.int(t, "sent") != 1000 || pub.int(t, "errors") != 0 {
				t.Errorf("pub: exit %d, summary %v, stderr %q", pub.code, pub.summary, pub.stderr)
			}
			if tc.args[3] != "0" && (pub.float(t, "p50_ms") <= 0 || pub.float(t, "p99_ms") < pub.float(t, "p50_ms")) {
				t.Errorf("pub: acknowledgement latency p50 %s p99 %s", pub.summary["p50_ms"], pub.summary["p99_ms"])
			}
			if sub.code != 0 || sub.summary["scenario"] != "sub" || sub.int(t, "connected") != 2 ||
				sub.int(t, "received") != 1000 || sub.int(t, "sent") != 0 || sub.int(t, "errors") != 0 {
				t.Errorf("sub: exit %d, summary %v, stderr %q", sub.code, sub.summary, sub.stderr)
			}
			if sub.float(t, "p50_ms") <= 0 || sub.float(t, "duration_s") <= 0 || sub.float(t, "rate") <= 0 {
				t.Errorf("sub: summary %v: want latency, duration and rate > 0", sub.summary)
			}
			qs := []string{"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"}
			for i := 1; i < len(qs); i++ {
				if sub.float(t, qs[i]) < sub.float(t, qs[i-1]) {
					t.Errorf("sub: %s %s below %s %s", qs[i], sub.summary[qs[i]], qs[i-1], sub.summary[qs[i-1]])
				}
			}
		})
	}

	t.Run("sub stops when idle", func(t *testing.T) {
		subscribed := make(chan struct{})
		var sub result
		var wg sync.WaitGroup
		wg.Go(func() {
			sub = runBench(t, ctx, func() { close(subscribed) },
				"sub", "-p", port(mqtt.TCP), "-t", "idle/#", "-idle", "300ms", "-d", "15s", "-quiet")
		})
		<-subscribed
		start := time.Now()
		runBench(t, ctx, nil, "pub", "-p", port(mqtt.TCP), "-t", "idle/x", "-n", "10", "-quiet")
		wg.Wait()
		if sub.code != 0 || sub.int(t, "received") != 10 || time.Since(start) > 5*time.Second {
			t.Errorf("sub: exit %d, summary %v after %v", sub.code, sub.summary, time.Since(start))
		}
	})

	t.Run("pub is paced", func(t *testing.T) {
		res := runBench(t, ctx, nil, "pub", "-p", port(mqtt.TCP), "-t", "paced/%i", "-c", "2", "-r", "200", "-n", "100", "-quiet")
		// 100 messages at 200/s: the first at 0, the last at 0.495s.
		if d := res.float(t, "duration_s"); res.code != 0 || d < 0.45 || d > 0.7 {
			t.Errorf("exit %d, summary %v: want duration_s about 0.495", res.code, res.summary)
		}
	})

	t.Run("conn", func(t *testing.T) {
		var ready time.Time
		res := runBench(t, ctx, func() { ready = time.Now() }, "conn", "-p", port(mqtt.TCP), "-c", "50", "-d", "1s", "-quiet")
		if res.code != 0 || res.int(t, "connected") != 50 || res.int(t, "errors") != 0 ||
			res.float(t, "p50_ms") <= 0 || res.float(t, "rate") <= 0 || ready.IsZero() {
			t.Errorf("exit %d, summary %v, stderr %q", res.code, res.summary, res.stderr)
		}
	})

	t.Run("progress lines", func(t *testing.T) {
		res := runBench(t, ctx, nil, "conn", "-p", port(mqtt.TCP), "-c", "3", "-d", "1500ms", "-i", "progress-")
		if res.code != 0 || !strings.Contains(res.stderr, "bench conn ") || !strings.Contains(res.stderr, "connected=3/3") {
			t.Errorf("exit %d, stderr %q", res.code, res.stderr)
		}
	})

	t.Run("persistent session v5", func(t *testing.T) {
		res := runBench(t, ctx, nil, "conn", "-p", port(mqtt.TCP), "-c", "2", "-clean=false", "-x", "60", "-d", "300ms", "-quiet")
		if res.code != 0 || res.int(t, "connected") != 2 {
			t.Errorf("exit %d, summary %v, stderr %q", res.code, res.summary, res.stderr)
		}
	})

	t.Run("refused subscription", func(t *testing.T) {
		// A filter over the default limit of 16 levels.
		filter := strings.Repeat("a/", 20) + "b"
		res := runBench(t, ctx, nil, "sub", "-p", port(mqtt.TCP), "-t", filter, "-d", "3s", "-quiet")
		if res.code != 1 || res.int(t, "errors") != 1 || !strings.Contains(res.stderr, kindSubRefused) {
			t.Errorf("exit %d, summary %v, stderr %q", res.code, res.summary, res.stderr)
		}
	})

	t.Run("ctx ends the run cleanly", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var timer *time.Timer
		res := runBench(t, ctx, func() { timer = time.AfterFunc(200*time.Millisecond, cancel) },
			"pub", "-p", port(mqtt.TCP), "-t", "cancel/%i", "-c", "2", "-q", "1", "-d", "30s", "-quiet")
		timer.Stop()
		if res.code != 0 || res.int(t, "errors") != 0 || res.int(t, "sent") == 0 || res.float(t, "duration_s") > 1 {
			t.Errorf("exit %d, summary %v, stderr %q", res.code, res.summary, res.stderr)
		}
	})
}

func TestConnectFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("nothing listening", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		res := runBench(t, ctx, nil, "pub", "-p", port, "-c", "3", "-d", "5s", "-quiet")
		if res.code != 1 || res.int(t, "errors") != 3 || res.int(t, "connected") != 0 ||
			strings.Count(res.stderr, kindConnect+":") != 2 { // logged once, then in the totals
			t.Errorf("exit %d, summary %v, stderr %q", res.code, res.summary, res.stderr)
		}
	})

	t.Run("CONNACK refused", func(t *testing.T) {
		port := fakeBroker(t, func(c net.Conn, v packet.Version) {
			writePacket(t, c, &packet.Connack{ReasonCode: packet.NotAuthorized}, v)
		})
		for _, v := range []string{"3", "5"} {
			res := runBench(t, ctx, nil, "conn", "-p", port, "-c", "2", "-V", v, "-d", "5s", "-quiet")
			if res.code != 1 || res.int(t, "errors") != 2 || !strings.Contains(res.stderr, "connection refused (") {
				t.Errorf("v%s: exit %d, summary %v, stderr %q", v, res.code, res.summary, res.stderr)
			}
		}
	})

	t.Run("connection lost", func(t *testing.T) {
		port := fakeBroker(t, func(c net.Conn, v packet.Version) {
			writePacket(t, c, &packet.Connack{}, v)
			time.Sleep(100 * time.Millisecond)
		})
		res := runBench(t, ctx, nil, "conn", "-p", port, "-c", "2", "-d", "5s", "-quiet")
		// Both lost: the run ends early.
		if res.code != 1 || res.int(t, "connected") != 2 || res.int(t, "errors") != 2 ||
			!strings.Contains(res.stderr, kindLost) {
			t.Errorf("exit %d, summary %v, stderr %q", res.code, res.summary, res.stderr)
		}
	})

	t.Run("server window", func(t *testing.T) {
		// A v5 server with Receive Maximum 3 never sees more than 3
		// unacknowledged QoS 1 messages; PUBACK with a failure code counts
		// as an error.
		var mu sync.Mutex
		maxInflight := 0
		port := fakeBroker(t, func(c net.Conn, v packet.Version) {
			ack := packet.Connack{}
			ack.Properties.ReceiveMaximum = 3
			writePacket(t, c, &ack, v)
			rd := packet.NewReader(c, packet.MaxPacketSize)
			var pending []uint16
			var pub packet.Publish
			for n := 0; n < 30; {
				h, body, err := rd.ReadPacket()
				if err != nil {
					return
				}
				if h.Type != packet.PUBLISH {
					continue
				}
				if err := pub.Unpack(h.Flags, body, v); err != nil {
					t.Error(err)
					return
				}
				n++
				pending = append(pending, pub.PacketID)
				mu.Lock()
				maxInflight = max(maxInflight, len(pending))
				mu.Unlock()
				if len(pending) == 3 || n == 30 {
					for _, id := range pending {
						code := packet.Success
						if n == 30 {
							code = packet.QuotaExceeded
						}
						writePacket(t, c, &packet.Puback{PacketID: id, ReasonCode: code}, v)
					}
					pending = pending[:0]
				}
			}
			for { // until the client disconnects
				if _, _, err := rd.ReadPacket(); err != nil {
					return
				}
			}
		})
		res := runBench(t, ctx, nil, "pub", "-p", port, "-q", "1", "-n", "30", "-d", "5s", "-quiet")
		mu.Lock()
		defer mu.Unlock()
		if res.code != 1 || res.int(t, "sent") != 30 || res.int(t, "errors") != 3 ||
			!strings.Contains(res.stderr, kindPubRefused) || maxInflight != 3 {
			t.Errorf("exit %d, summary %v, stderr %q, max in flight %d", res.code, res.summary, res.stderr, maxInflight)
		}
	})
}

// fakeBroker serves each connection with serve after reading its CONNECT,
// then closes it. It returns the port.
func fakeBroker(t *testing.T, serve func(net.Conn, packet.Version)) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				rd := packet.NewReader(c, packet.MaxPacketSize)
				h, body, err := rd.ReadPacket()
				if err != nil {
					return
				}
				var cn packet.Connect
				if err := cn.Unpack(h.Flags, body, 0); err != nil {
					t.Error(err)
					return
				}
				serve(c, cn.Version)
			})
		}
	})
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func writePacket(t *testing.T, c net.Conn, p packet.Packet, v packet.Version) {
	b, err := packet.Encode(p, v)
	if err != nil {
		t.Error(fmt.Errorf("encoding %s: %w", p.Type(), err))
		return
	}
	_, _ = c.Write(b)
}
