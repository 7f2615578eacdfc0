package testsuite

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/mqtt"
	"github.com/bifromq-go/bifromq/standalone"
)

// NodeConfig returns a standalone configuration for a test: data in a new
// temporary directory, the TCP, WS and API listeners on free loopback ports,
// TLS and WSS off, cluster addresses on free ports.
func NodeConfig(t testing.TB) standalone.Config {
	t.Helper()
	cfg := standalone.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.MQTT.TCP.Addr = "127.0.0.1:0"
	cfg.MQTT.WS.Addr = "127.0.0.1:0"
	cfg.MQTT.TLS.Addr = standalone.Off
	cfg.MQTT.WSS.Addr = standalone.Off
	cfg.API.Addr = "127.0.0.1:0"
	cfg.Cluster.Bind = "127.0.0.1:0"
	cfg.Cluster.RaftAddr = "127.0.0.1:0"
	return cfg
}

// StartNode starts a node from cfg (see NodeConfig) and closes it when the
// test ends.
func StartNode(t testing.TB, cfg standalone.Config) *standalone.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := standalone.Start(ctx, cfg, standalone.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatalf("starting a node: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("closing the node: %v", err)
		}
	})
	return n
}

// Port returns the port of a node's listener of kind k.
func Port(t testing.TB, n *standalone.Node, k mqtt.ListenerKind) int {
	t.Helper()
	a, ok := n.MQTTAddr(k).(*net.TCPAddr)
	if !ok {
		t.Fatalf("no %s listener", k)
	}
	return a.Port
}

// RequireTool returns the path of an external program. When it is missing
// the test skips on a developer's machine and fails under CI.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed: .ci/run must install it (apt-get install mosquitto-clients)", name)
	}
	t.Skipf("%s is not installed; `make test` installs it", name)
	return ""
}
