package standalone

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/mqtt"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testConfig is a node on a fresh data dir, on free loopback ports, with
// only the TCP listener and the API.
func testConfig(t *testing.T) Config {
	c := DefaultConfig()
	c.DataDir = filepath.Join(t.TempDir(), "data")
	c.MQTT.TCP.Addr = "127.0.0.1:0"
	c.MQTT.WS.Addr = Off
	c.API.Addr = "127.0.0.1:0"
	c.Cluster.Bind = "127.0.0.1:0"
	c.Cluster.RaftAddr = "127.0.0.1:0"
	c.Store.LogDB = "tiny"
	c.MQTT.DrainTimeout = time.Second
	return c
}

// mqttConnectV5 opens an MQTT 5 connection to addr and checks its CONNACK
// is a success.
func mqttConnectV5(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dialling MQTT: %v", err)
	}
	connect := []byte{
		0x10, 15, // CONNECT, remaining length
		0, 4, 'M', 'Q', 'T', 'T', 5, // protocol name and level
		0x02,     // clean start
		0, 60, 0, // keep alive 60s, no properties
		0, 2, 'c', '1', // client identifier
	}
	if _, err := c.Write(connect); err != nil {
		t.Fatal(err)
	}
	typ, body := readPacket(t, c)
	if typ != 0x20 || len(body) < 2 || body[1] != 0 {
		t.Fatalf("CONNACK: got type %#x body % x, want a success", typ, body)
	}
	return c
}

// readPacket reads one MQTT packet: its first byte and its body.
func readPacket(t *testing.T, c net.Conn) (byte, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	read := func() byte {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			t.Fatalf("reading an MQTT packet: %v", err)
		}
		return b[0]
	}
	typ := read()
	n, shift := 0, 0
	for {
		d := read()
		n |= int(d&0x7f) << shift
		if d&0x80 == 0 {
			break
		}
		shift += 7
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatalf("reading an MQTT packet body: %v", err)
	}
	return typ, body
}

func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	l, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockDir(dir)
	if !errors.Is(err, ErrDataDirLocked) {
		t.Fatalf("second lock = %v, want ErrDataDirLocked", err)
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) {
		t.Errorf("error %q does not name the dir and the holder's pid", err)
	}
	if err := l.release(); err != nil {
		t.Fatal(err)
	}
	l, err = lockDir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l.release()
}

func TestStartRejectsInvalidConfig(t *testing.T) {
	c := testConfig(t)
	c.MQTT.MaxInflight = 0
	_, err := Start(context.Background(), c, WithLogger(quietLogger()))
	if ce := configError(t, err); !hasProblem(ce, "mqtt.maxInflight") {
		t.Errorf("problems %q", ce.Problems)
	}
	if _, err := os.Stat(c.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an invalid config created the data dir: %v", err)
	}
}

func TestFailedStartReleasesLock(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	c := testConfig(t)
	c.MQTT.TCP.Addr = busy.Addr().String()
	if n, err := Start(context.Background(), c, WithLogger(quietLogger())); err == nil {
		n.Close()
		t.Fatal("Start on a busy MQTT port succeeded")
	}
	fi, err := os.Stat(c.DataDir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&^0o750 != 0 {
		t.Errorf("data dir: %v %v, want a directory of mode 0750 (less the umask)", fi.Mode(), err)
	}
	l, err := lockDir(c.DataDir)
	if err != nil {
		t.Fatalf("the lock is still held after a failed Start: %v", err)
	}
	l.release()
}

func TestStartHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := testConfig(t)
	if n, err := Start(ctx, c, WithLogger(quietLogger())); !errors.Is(err, context.Canceled) {
		if n != nil {
			n.Close()
		}
		t.Fatalf("Start with a cancelled context = %v, want context.Canceled", err)
	}
	l, err := lockDir(c.DataDir)
	if err != nil {
		t.Fatalf("the lock is still held: %v", err)
	}
	l.release()
}

// httpGet fetches url and returns the status and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestNode(t *testing.T) {
	c := testConfig(t)
	n, err := Start(context.Background(), c, WithLogger(quietLogger()))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			n.Close()
		}
	}()

	t.Run("addresses", func(t *testing.T) {
		a := n.MQTTAddr(mqtt.TCP)
		if a == nil {
			t.Fatal("MQTTAddr(TCP) = nil")
		}
		mqttConnectV5(t, a.String()).Close()
		for _, k := range []mqtt.ListenerKind{mqtt.TLS, mqtt.WS, mqtt.WSS} {
			if a := n.MQTTAddr(k); a != nil {
				t.Errorf("MQTTAddr(%s) = %v for a listener that is off", k, a)
			}
		}
	})

	t.Run("api", func(t *testing.T) {
		base := "http://" + n.APIAddr().String()
		if code, body := httpGet(t, base+"/readyz"); code != 200 {
			t.Errorf("/readyz = %d %s, want 200", code, body)
		}
		code, body := httpGet(t, base+"/metrics")
		for _, want := range []string{"go_goroutines", "process_cpu_seconds_total", "bifromq_build_info", "bifromq_api_requests_total"} {
			if code != 200 || !strings.Contains(body, want) {
				t.Errorf("/metrics (%d) lacks %s", code, want)
			}
		}
	})

	t.Run("lock", func(t *testing.T) {
		n2, err := Start(context.Background(), testConfig(t), WithLogger(quietLogger()))
		if err != nil {
			t.Fatalf("a node on another data dir: %v", err)
		}
		n2.Close()

		c2 := testConfig(t)
		c2.DataDir = c.DataDir
		n2, err = Start(context.Background(), c2, WithLogger(quietLogger()))
		if err == nil {
			n2.Close()
			t.Fatal("a second node started on the same data dir")
		}
		abs, _ := filepath.Abs(c.DataDir)
		if !errors.Is(err, ErrDataDirLocked) || !strings.Contains(err.Error(), abs) {
			t.Errorf("second Start = %v, want ErrDataDirLocked naming %s", err, abs)
		}
	})

	t.Run("close", func(t *testing.T) {
		mqttAddr, apiAddr := n.MQTTAddr(mqtt.TCP).String(), n.APIAddr().String()
		client := mqttConnectV5(t, mqttAddr)
		defer client.Close()
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Go(func() { errs[i] = n.Close() })
		}
		// The MQTT server says goodbye: DISCONNECT 0x8B, server shutting down.
		typ, body := readPacket(t, client)
		if typ != 0xE0 || len(body) < 1 || body[0] != 0x8B {
			t.Errorf("on Close the client got type %#x body % x, want DISCONNECT 0x8B", typ, body)
		}
		client.Close()
		wg.Wait()
		closed = true
		for i, err := range errs {
			if err != nil {
				t.Errorf("Close #%d: %v", i, err)
			}
		}
		if err := n.ready(); err == nil || !strings.Contains(err.Error(), "shutting down") {
			t.Errorf("readiness after Close = %v, want shutting down", err)
		}
		for _, a := range []string{mqttAddr, apiAddr} {
			if conn, err := net.DialTimeout("tcp", a, time.Second); err == nil {
				conn.Close()
				t.Errorf("%s still accepts after Close", a)
			}
		}
		n2, err := Start(context.Background(), c, WithLogger(quietLogger()))
		if err != nil {
			t.Fatalf("Start on the data dir after Close: %v", err)
		}
		n2.Close()
	})

	t.Run("main runs until cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var stdout, stderr syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- Main(ctx, []string{
				"--data-dir", filepath.Join(t.TempDir(), "d"),
				"--mqtt-tcp", "127.0.0.1:0", "--mqtt-ws", "off", "--api-addr", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0",
			}, &stdout, &stderr)
		}()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(stderr.String(), "bifromq started") {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("no start line within 10s; stderr:\n%s", stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit %d after cancel, want 0; stderr:\n%s", code, stderr.String())
		}
		log := stderr.String()
		for _, want := range []string{"mqtt.tcp=127.0.0.1:", "api=127.0.0.1:", "bifromq stopped"} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		}
	})
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestNodeWithoutAPI(t *testing.T) {
	c := testConfig(t)
	c.API.Addr = Off
	c.MQTT.WS.Addr = "127.0.0.1:0"
	n, err := Start(context.Background(), c, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if a := n.APIAddr(); a != nil {
		t.Errorf("APIAddr() = %v with api.addr off", a)
	}
	if n.MQTTAddr(mqtt.TCP) == nil || n.MQTTAddr(mqtt.WS) == nil {
		t.Errorf("MQTTAddr: tcp %v, ws %v; want both bound", n.MQTTAddr(mqtt.TCP), n.MQTTAddr(mqtt.WS))
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}
