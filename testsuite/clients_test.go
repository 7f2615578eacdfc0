package testsuite

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/bifromq-go/bifromq/mqtt"
	"github.com/bifromq-go/bifromq/standalone"
	"github.com/bifromq-go/bifromq/testsuite/testcert"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's worker-pool sweeper outlives Close by up to its idle
		// time (see apiserver/doc.go).
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		// paho.mqtt.golang closes its network goroutines asynchronously.
		goleak.IgnoreAnyFunction("github.com/eclipse/paho.mqtt.golang.(*client).startCommsWorkers.func1"),
		// memberlist's Shutdown does not wait for an in-flight probe, which
		// ends within its probe timeout.
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
	)
}

// metric reads one series from the node's /metrics endpoint; 0 if absent.
func metric(t *testing.T, n *standalone.Node, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + n.APIAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

const pingSeries = `bifromq_mqtt_packets_received_total{type="PINGREQ"}`

func waitMetric(t *testing.T, n *standalone.Node, series string, atLeast float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, n, series) < atLeast {
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed below %v", series, atLeast)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pahoV5 connects a paho.golang (MQTT 5) client over nc.
func pahoV5(t *testing.T, nc net.Conn, clientID string, keepAlive uint16) *paho.Client {
	t.Helper()
	c := paho.NewClient(paho.ClientConfig{Conn: nc, OnClientError: func(error) {}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: keepAlive, CleanStart: true})
	if err != nil {
		t.Fatalf("paho.golang connect: %v", err)
	}
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNACK reason %#x", ack.ReasonCode)
	}
	if ack.Properties.ReceiveMaximum == nil || *ack.Properties.ReceiveMaximum != 200 {
		t.Fatalf("CONNACK receive maximum %v, want 200", ack.Properties.ReceiveMaximum)
	}
	return c
}

func TestPahoV5OverTCP(t *testing.T) {
	n := StartNode(t, NodeConfig(t))
	nc, err := net.Dial("tcp", n.MQTTAddr(mqtt.TCP).String())
	if err != nil {
		t.Fatal(err)
	}
	c := pahoV5(t, nc, "paho-v5", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, qos := range []byte{1, 2} {
		resp, err := c.Publish(ctx, &paho.Publish{Topic: "a/b", QoS: qos, Payload: []byte("hi")})
		if err != nil {
			t.Fatalf("publish QoS %d: %v", qos, err)
		}
		// PUBACK says "no matching subscribers" (0x10): nothing is routed
		// yet. For QoS 2 paho reports the PUBCOMP's code, success.
		if want := map[byte]byte{1: 0x10, 2: 0}[qos]; resp.ReasonCode != want {
			t.Fatalf("publish QoS %d: reason %#x, want %#x", qos, resp.ReasonCode, want)
		}
	}
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "a/#", QoS: 2, NoLocal: true}, {Topic: "x/+", QoS: 1}, {Topic: "bad/#/x", QoS: 0}}})
	if sa == nil { // paho also returns an error naming the failed filter
		t.Fatal(err)
	}
	if fmt.Sprint(sa.Reasons) != "[2 1 143]" {
		t.Fatalf("SUBACK reasons %v, want [2 1 143]", sa.Reasons)
	}
	// Keep alive 1 s: the client's pinger must be answered.
	waitMetric(t, n, pingSeries, 2)
	select {
	case <-c.Done():
		t.Fatal("connection ended while pinging")
	default:
	}
	if err := c.Disconnect(&paho.Disconnect{ReasonCode: 0}); err != nil {
		t.Fatal(err)
	}
	<-c.Done()
}

// paho3 returns connect options for a paho.mqtt.golang (3.1.1) client.
func paho3(broker, clientID string) *mqtt3.ClientOptions {
	o := mqtt3.NewClientOptions().AddBroker(broker).SetClientID(clientID).
		SetProtocolVersion(4).SetKeepAlive(time.Second).SetPingTimeout(time.Second).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetConnectRetry(false)
	return o
}

func exercise3(t *testing.T, n *standalone.Node, o *mqtt3.ClientOptions) {
	t.Helper()
	c := mqtt3.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	for _, qos := range []byte{0, 1, 2} {
		if tok := c.Publish("a/b", qos, false, "hi"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish QoS %d: %v", qos, tok.Error())
		}
	}
	tok := c.SubscribeMultiple(map[string]byte{"a/#": 2, "b/+": 1}, nil)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if got := tok.(*mqtt3.SubscribeToken).Result(); got["a/#"] != 2 || got["b/+"] != 1 {
		t.Fatalf("granted %v", got)
	}
	before := metric(t, n, pingSeries)
	waitMetric(t, n, pingSeries, before+1)
	if !c.IsConnectionOpen() {
		t.Fatal("connection closed while pinging")
	}
}

func TestPahoV311OverTCP(t *testing.T) {
	n := StartNode(t, NodeConfig(t))
	exercise3(t, n, paho3("tcp://"+n.MQTTAddr(mqtt.TCP).String(), "paho-v311"))
}

func TestPahoV311OverWebSocket(t *testing.T) {
	n := StartNode(t, NodeConfig(t))
	exercise3(t, n, paho3("ws://"+n.MQTTAddr(mqtt.WS).String()+"/mqtt", "paho-ws"))
}

// tlsNode starts a node with TLS and WSS listeners that require a client
// certificate signed by the test CA.
func tlsNode(t *testing.T) (*standalone.Node, testcert.Files) {
	t.Helper()
	files, err := testcert.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := NodeConfig(t)
	cfg.MQTT.TLS.Addr = "127.0.0.1:0"
	cfg.MQTT.TLS.CertFile, cfg.MQTT.TLS.KeyFile = files.ServerCert, files.ServerKey
	cfg.MQTT.TLS.ClientCAFile, cfg.MQTT.TLS.ClientAuth = files.CA, "require"
	cfg.MQTT.WSS.Addr = "127.0.0.1:0"
	cfg.MQTT.WSS.CertFile, cfg.MQTT.WSS.KeyFile = files.ServerCert, files.ServerKey
	return StartNode(t, cfg), files
}

func clientTLS(t *testing.T, files testcert.Files) *tls.Config {
	t.Helper()
	ca, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: testcert.ServerName}
}

func TestTLSAndWSS(t *testing.T) {
	n, files := tlsNode(t)
	cfg := clientTLS(t, files)
	t.Run("paho v3.1.1 over TLS with a client certificate", func(t *testing.T) {
		exercise3(t, n, paho3("ssl://"+n.MQTTAddr(mqtt.TLS).String(), "tls3").SetTLSConfig(cfg))
	})
	t.Run("paho v5 over TLS", func(t *testing.T) {
		nc, err := tls.Dial("tcp", n.MQTTAddr(mqtt.TLS).String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		c := pahoV5(t, nc, "tls5", 30)
		c.Disconnect(&paho.Disconnect{})
		<-c.Done()
	})
	t.Run("TLS without a client certificate is refused", func(t *testing.T) {
		noCert := cfg.Clone()
		noCert.Certificates = nil
		nc, err := tls.Dial("tcp", n.MQTTAddr(mqtt.TLS).String(), noCert)
		if err == nil {
			// TLS 1.3 reports the refusal on the first read.
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			nc.Write([]byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0})
			_, err = io.ReadAll(nc)
			nc.Close()
		}
		if err == nil {
			t.Fatal("a client without a certificate was served")
		}
	})
	t.Run("paho v3.1.1 over WSS", func(t *testing.T) {
		exercise3(t, n, paho3("wss://"+n.MQTTAddr(mqtt.WSS).String()+"/mqtt", "wss3").SetTLSConfig(cfg))
	})
}

// TestMosquittoClients runs Debian's mosquitto_pub against the broker in
// each protocol version and over TLS with a client certificate.
func TestMosquittoClients(t *testing.T) {
	pub := RequireTool(t, "mosquitto_pub")
	n, files := tlsNode(t)
	port := strconv.Itoa(Port(t, n, mqtt.TCP))
	run := func(t *testing.T, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, pub, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub %v: %v\n%s", args, err, out)
		}
	}
	for _, v := range []string{"mqttv31", "mqttv311", "mqttv5"} {
		for _, qos := range []string{"0", "1", "2"} {
			t.Run(v+"/qos"+qos, func(t *testing.T) {
				before := metric(t, n, `bifromq_mqtt_packets_received_total{type="PUBLISH"}`)
				run(t, "-h", "127.0.0.1", "-p", port, "-V", v, "-q", qos, "-i", "mosq-"+v, "-t", "a/b", "-m", "hello")
				if got := metric(t, n, `bifromq_mqtt_packets_received_total{type="PUBLISH"}`); got != before+1 {
					t.Fatalf("PUBLISH count went from %v to %v", before, got)
				}
			})
		}
	}
	t.Run("tls", func(t *testing.T) {
		run(t, "-h", "127.0.0.1", "-p", strconv.Itoa(Port(t, n, mqtt.TLS)), "--cafile", files.CA,
			"--cert", files.ClientCert, "--key", files.ClientKey, "-q", "1", "-t", "a/b", "-m", "over tls")
	})
}
