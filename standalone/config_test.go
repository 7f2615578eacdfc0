package standalone

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/dist"
	"github.com/bifromq-go/bifromq/mqtt"
)

// writeFile writes content to a file in a temp dir and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// configError asserts err is a *ConfigError wrapping ErrConfig.
func configError(t *testing.T, err error) *ConfigError {
	t.Helper()
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *ConfigError", err, err)
	}
	if !errors.Is(err, ErrConfig) {
		t.Errorf("error %v does not wrap ErrConfig", err)
	}
	return ce
}

// hasProblem reports whether one of ce's problems contains every part.
func hasProblem(ce *ConfigError, parts ...string) bool {
	return slices.ContainsFunc(ce.Problems, func(p string) bool {
		for _, s := range parts {
			if !strings.Contains(p, s) {
				return false
			}
		}
		return true
	})
}

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	for _, a := range []string{c.MQTT.TCP.Addr, c.MQTT.WS.Addr, c.API.Addr, c.Cluster.Bind, c.Cluster.RaftAddr} {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("default address %s does not bind loopback only", a)
		}
	}
	if !isOff(c.MQTT.TLS.Addr) || !isOff(c.MQTT.WSS.Addr) {
		t.Errorf("TLS and WSS are on by default")
	}
}

func TestExampleFileIsTheDefaults(t *testing.T) {
	c, err := LoadConfig("bifromq.example.yaml")
	if err != nil {
		t.Fatalf("LoadConfig(example): %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("example is invalid: %v", err)
	}
	if len(c.Cluster.Seeds) == 0 {
		c.Cluster.Seeds = nil // "seeds: []" is the default, nil
	}
	if d := DefaultConfig(); !reflect.DeepEqual(c, d) {
		t.Errorf("the example file differs from DefaultConfig:\nfile:     %+v\ndefaults: %+v", c, d)
	}
}

func TestEmptyFileIsTheDefaults(t *testing.T) {
	for _, content := range []string{"", "# only a comment\n", "---\n"} {
		c, err := LoadConfig(writeFile(t, "empty.yaml", content))
		if err != nil {
			t.Fatalf("LoadConfig(%q): %v", content, err)
		}
		if !reflect.DeepEqual(c, DefaultConfig()) {
			t.Errorf("LoadConfig(%q) = %+v, want the defaults", content, c)
		}
	}
}

func TestFileOverridesDefaults(t *testing.T) {
	c, err := LoadConfig(writeFile(t, "c.yaml", `
dataDir: /var/lib/bifromq
mqtt:
  tcp: {addr: "0.0.0.0:1883", proxyProtocol: true}
  ws: {addr: "off"}
  connectTimeout: 3s
  maxPacketSize: 4096
cluster:
  seeds: ["10.0.0.1:7946", "10.0.0.2:7946"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.DataDir = "/var/lib/bifromq"
	want.MQTT.TCP.Addr, want.MQTT.TCP.ProxyProtocol = "0.0.0.0:1883", true
	want.MQTT.WS.Addr = Off
	want.MQTT.ConnectTimeout = 3 * time.Second
	want.MQTT.MaxPacketSize = 4096
	want.Cluster.Seeds = []string{"10.0.0.1:7946", "10.0.0.2:7946"}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestThreeBadFieldsOneError(t *testing.T) {
	c, err := LoadConfig(writeFile(t, "bad.yaml", `
log:
  level: loud
mqtt:
  maxPacketSize: 10
  ws:
    path: mqtt
`))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	ce := configError(t, c.Validate())
	if len(ce.Problems) != 3 {
		t.Errorf("got %d problems, want 3: %q", len(ce.Problems), ce.Problems)
	}
	for _, want := range [][]string{
		{"log.level:", "loud"},
		{"mqtt.maxPacketSize:", "10", "[64, 268435460]"},
		{"mqtt.ws.path:", "must start with /"},
	} {
		if !hasProblem(ce, want...) {
			t.Errorf("no problem mentions %q: %q", want, ce.Problems)
		}
	}
	if msg := ce.Error(); !strings.Contains(msg, "3 problems") {
		t.Errorf("Error() = %q, want it to count the problems", msg)
	}
}

func TestTLSListenerNeedsCertificates(t *testing.T) {
	c := DefaultConfig()
	c.MQTT.TLS.Addr = "127.0.0.1:8883"
	c.MQTT.WSS.Addr = "127.0.0.1:8443"
	c.MQTT.WSS.CertFile = filepath.Join(t.TempDir(), "missing.pem")
	c.MQTT.WSS.ClientAuth = "require"
	ce := configError(t, c.Validate())
	for _, want := range [][]string{
		{"mqtt.tls.certFile: required when mqtt.tls.addr is set"},
		{"mqtt.tls.keyFile: required when mqtt.tls.addr is set"},
		{"mqtt.wss.certFile:", "missing.pem"},
		{"mqtt.wss.keyFile: required"},
		{"mqtt.wss.clientCAFile: required when mqtt.wss.clientAuth is require"},
	} {
		if !hasProblem(ce, want...) {
			t.Errorf("no problem mentions %q: %q", want, ce.Problems)
		}
	}

	// Problems of a listener that is off are not reported.
	c = DefaultConfig()
	c.MQTT.TLS.ClientAuth = "sometimes"
	if err := c.Validate(); err != nil {
		t.Errorf("a bad setting of an off listener was reported: %v", err)
	}
}

func TestUnknownKeyNamed(t *testing.T) {
	_, err := LoadConfig(writeFile(t, "unknown.yaml", `
dataDir: ./d
mqtt:
  tcp:
    adr: "127.0.0.1:1883"
  maxPacketsize: 100
colour: blue
`))
	ce := configError(t, err)
	for _, want := range [][]string{
		{"unknown.yaml:5:", "mqtt.tcp.adr: unknown key", "did you mean addr?"},
		{"unknown.yaml:6:", "mqtt.maxPacketsize: unknown key", "did you mean maxPacketSize?"},
		{"unknown.yaml:7:", "colour: unknown key"},
	} {
		if !hasProblem(ce, want...) {
			t.Errorf("no problem mentions %q: %q", want, ce.Problems)
		}
	}
	if len(ce.Problems) != 3 {
		t.Errorf("got %d problems, want 3: %q", len(ce.Problems), ce.Problems)
	}
}

func TestIllTypedValuesNamed(t *testing.T) {
	_, err := LoadConfig(writeFile(t, "types.yaml", `
mqtt:
  connectTimeout: soon
  maxInflight: many
  tcp: {proxyProtocol: perhaps}
cluster:
  seeds: "a:1"
`))
	ce := configError(t, err)
	for _, want := range [][]string{
		{"types.yaml:3:", "mqtt.connectTimeout:", "soon", "duration"},
		{"types.yaml:4:", "mqtt.maxInflight:", "many"},
		{"types.yaml:5:", "mqtt.tcp.proxyProtocol:", "perhaps"},
		{"types.yaml:7:", "cluster.seeds:"},
	} {
		if !hasProblem(ce, want...) {
			t.Errorf("no problem mentions %q: %q", want, ce.Problems)
		}
	}
}

func TestBadYAML(t *testing.T) {
	for name, content := range map[string]string{
		"syntax":     "mqtt: [unclosed\n",
		"not a map":  "just a string\n",
		"duplicate":  "dataDir: a\ndataDir: b\n",
		"tab indent": "mqtt:\n\ttcp: {}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadConfig(writeFile(t, "bad.yaml", content))
			ce := configError(t, err)
			if !hasProblem(ce, "bad.yaml") {
				t.Errorf("problems do not name the file: %q", ce.Problems)
			}
		})
	}
	_, err := LoadConfig(filepath.Join(t.TempDir(), "absent.yaml"))
	if ce := configError(t, err); !hasProblem(ce, "absent.yaml") {
		t.Errorf("missing file: %q", ce.Problems)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	file := writeFile(t, "c.yaml", `
dataDir: /from/file
log: {level: debug}
mqtt:
  tcp: {addr: "127.0.0.1:2883"}
api: {addr: "127.0.0.1:2091", token: abc}
`)
	c := DefaultConfig()
	rest, err := c.ApplyFlags([]string{
		"--config", file,
		"--mqtt-tcp", "127.0.0.1:3883",
		"-data-dir=/from/flag",
		"--seeds", "10.0.0.1:7946, 10.0.0.2:7946,",
		"--log-format", "json",
		"extra", "args",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rest, []string{"extra", "args"}) {
		t.Errorf("rest = %q", rest)
	}
	want := DefaultConfig()
	want.DataDir = "/from/flag"                          // flag over file
	want.Log = LogConfig{Level: "debug", Format: "json"} // file, then flag
	want.MQTT.TCP.Addr = "127.0.0.1:3883"                // flag over file
	want.API = APIConfig{Addr: "127.0.0.1:2091", Token: "abc"}
	want.Cluster.Seeds = []string{"10.0.0.1:7946", "10.0.0.2:7946"}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestEveryFlagSetsItsField(t *testing.T) {
	c := DefaultConfig()
	_, err := c.ApplyFlags([]string{
		"--data-dir", "d", "--mqtt-tcp", "h:1", "--mqtt-tls", "h:2", "--mqtt-ws", "h:3",
		"--mqtt-wss", "h:4", "--api-addr", "h:5", "--cluster-bind", "h:6", "--raft-addr", "h:7",
		"--seeds", "h:8", "--log-level", "warn", "--log-format", "json",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.DataDir, c.MQTT.TCP.Addr, c.MQTT.TLS.Addr, c.MQTT.WS.Addr, c.MQTT.WSS.Addr,
		c.API.Addr, c.Cluster.Bind, c.Cluster.RaftAddr, strings.Join(c.Cluster.Seeds, ","), c.Log.Level, c.Log.Format}
	want := []string{"d", "h:1", "h:2", "h:3", "h:4", "h:5", "h:6", "h:7", "h:8", "warn", "json"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFlagErrors(t *testing.T) {
	c := DefaultConfig()
	if _, err := c.ApplyFlags([]string{"--no-such-flag"}); err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("unknown flag: %v", err)
	}
	if _, err := c.ApplyFlags([]string{"--mqtt-tcp"}); err == nil || !strings.Contains(err.Error(), "mqtt-tcp") {
		t.Errorf("flag without value: %v", err)
	}
	if _, err := c.ApplyFlags([]string{"--config", filepath.Join(t.TempDir(), "nope.yaml")}); !errors.Is(err, ErrConfig) {
		t.Errorf("missing config file: %v, want ErrConfig", err)
	}
	if !reflect.DeepEqual(c, DefaultConfig()) {
		t.Errorf("failed ApplyFlags changed the config: %+v", c)
	}
}

func TestOff(t *testing.T) {
	c := DefaultConfig()
	if _, err := c.ApplyFlags([]string{"--mqtt-ws", "off", "--api-addr", "OFF", "--mqtt-tls", "off"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	o := c.MQTTOptions()
	if len(o.Listeners) != 1 || o.Listeners[0].Kind != mqtt.TCP {
		t.Errorf("listeners = %+v, want only tcp", o.Listeners)
	}

	c.MQTT.TCP.Addr = Off
	ce := configError(t, c.Validate())
	if !hasProblem(ce, "mqtt: every listener is off") {
		t.Errorf("all MQTT listeners off: %q", ce.Problems)
	}

	c = DefaultConfig()
	c.Cluster.Bind = Off
	if ce := configError(t, c.Validate()); !hasProblem(ce, "cluster.bind:", "off") {
		t.Errorf("cluster.bind off: %q", ce.Problems)
	}
}

func TestDuplicateAddrs(t *testing.T) {
	c := DefaultConfig()
	c.MQTT.WS.Addr = c.MQTT.TCP.Addr
	c.API.Addr = "0.0.0.0:7947" // every interface, so it clashes with raftAddr on 127.0.0.1
	ce := configError(t, c.Validate())
	if !hasProblem(ce, "mqtt.ws.addr:", "clashes with mqtt.tcp.addr") {
		t.Errorf("same address twice: %q", ce.Problems)
	}
	if !hasProblem(ce, "cluster.raftAddr:", "clashes with api.addr") {
		t.Errorf("wildcard and loopback on one port: %q", ce.Problems)
	}

	// Port 0 never clashes; different hosts on one port do not clash.
	c = DefaultConfig()
	c.MQTT.TCP.Addr, c.MQTT.WS.Addr, c.API.Addr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.2:7946"
	if err := c.Validate(); err != nil {
		t.Errorf("port 0 twice, or distinct hosts: %v", err)
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	c := Config{} // every field empty or zero
	ce := configError(t, c.Validate())
	for _, path := range []string{
		"dataDir:", "log.level:", "log.format:", "mqtt.tcp.addr:", "mqtt.tls.addr:", "mqtt.ws.addr:",
		"mqtt.wss.addr:", "mqtt.connectTimeout:", "mqtt.writeTimeout:", "mqtt.drainTimeout:",
		"mqtt.maxPacketSize:", "mqtt.maxInflight:", "mqtt.maxClientIDLength:", "api.addr:",
		"cluster.env:", "cluster.bind:", "cluster.raftAddr:", "auth.provider:", "tenants.defaults:",
	} {
		if !hasProblem(ce, path) {
			t.Errorf("no problem names %s: %q", path, ce.Problems)
		}
	}

	c = DefaultConfig()
	c.MQTT.TCP.Addr = "127.0.0.1:99999"
	c.MQTT.WS.Addr = "localhost"
	c.MQTT.MaxInflight = 70000
	c.Tenants.Defaults.MaxTopicLevels = 0
	c.Tenants.Defaults.MaximumQoS = 3
	c.MQTT.MaxConnections = -1
	c.MQTT.ConnectRate = -1
	c.API.Token = "two words"
	c.Cluster.Advertise = ":7946"
	c.Cluster.Seeds = []string{"10.0.0.1:7946", "nohost", "10.0.0.3:0"}
	ce = configError(t, c.Validate())
	for _, want := range [][]string{
		{"mqtt.tcp.addr:", "99999"},
		{"mqtt.ws.addr:", "not host:port"},
		{"mqtt.maxInflight:", "70000"},
		{"tenants.defaults:", "maxTopicLevels"},
		{"tenants.defaults:", "maximumQoS"},
		{"mqtt.maxConnections:"},
		{"mqtt.connectRate:"},
		{"api.token:"},
		{"cluster.advertise:", "no host"},
		{"cluster.seeds[1]:", "nohost"},
		{"cluster.seeds[2]:", "port 0"},
	} {
		if !hasProblem(ce, want...) {
			t.Errorf("no problem mentions %q: %q", want, ce.Problems)
		}
	}
	if hasProblem(ce, "cluster.seeds[0]") {
		t.Errorf("a good seed was reported: %q", ce.Problems)
	}
}

func TestMQTTOptions(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	key := filepath.Join(dir, "key.pem")
	for _, f := range []string{cert, key} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := DefaultConfig()
	c.MQTT.TLS.Addr = "127.0.0.1:8883"
	c.MQTT.TLS.CertFile, c.MQTT.TLS.KeyFile = cert, key
	c.MQTT.TLS.ClientAuth = "request"
	c.MQTT.WSS.Addr = "127.0.0.1:8443"
	c.MQTT.WSS.CertFile, c.MQTT.WSS.KeyFile = cert, key
	c.MQTT.WSS.ProxyProtocol = true
	c.MQTT.WS.Path = "/ws"
	c.MQTT.MaxInflight = 100
	c.MQTT.MaxKeepAlive = 300
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	o := c.MQTTOptions()
	o.Router = nopRouter{} // the node supplies its dist service
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatalf("mqtt.Options of a valid Config are invalid: %v", err)
	}
	want := []mqtt.Listener{
		{Kind: mqtt.TCP, Addr: "127.0.0.1:1883"},
		{Kind: mqtt.TLS, Addr: "127.0.0.1:8883", TLS: mqtt.TLSFiles{CertFile: cert, KeyFile: key, ClientAuth: mqtt.ClientAuthRequest}},
		{Kind: mqtt.WS, Addr: "127.0.0.1:8080", Path: "/ws", TLS: mqtt.TLSFiles{ClientAuth: mqtt.ClientAuthNone}},
		{Kind: mqtt.WSS, Addr: "127.0.0.1:8443", Path: "/mqtt", ProxyProtocol: true,
			TLS: mqtt.TLSFiles{CertFile: cert, KeyFile: key, ClientAuth: mqtt.ClientAuthNone}},
	}
	want[0].TLS.ClientAuth = mqtt.ClientAuthNone
	if !reflect.DeepEqual(o.Listeners, want) {
		t.Errorf("listeners:\ngot  %+v\nwant %+v", o.Listeners, want)
	}
	if o.MaxInflight != 100 || o.MaxKeepAlive != 300 || o.MaxPacketSize != mqtt.DefaultMaxPacketSize ||
		o.ConnectTimeout != mqtt.DefaultConnectTimeout {
		t.Errorf("bounds not carried over: %+v", o)
	}
}

// TestTenantOverrides: a tenant's overrides change only the keys it
// names; unknown keys and bad values are reported with the tenant's path.
func TestTenantOverrides(t *testing.T) {
	c, err := LoadConfig(writeFile(t, "tenants.yaml", `
tenants:
  defaults:
    maxTopicLevels: 8
  overrides:
    acme:
      maximumQoS: 1
      retainEnabled: false
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ts, err := c.Tenants.TenantSettings()
	if err != nil {
		t.Fatal(err)
	}
	acme := ts["acme"]
	if acme.MaximumQoS != 1 || acme.RetainEnabled || acme.MaxTopicLevels != 8 || acme.MaxTopicAlias != 10 {
		t.Fatalf("acme %+v", acme)
	}
	c, err = LoadConfig(writeFile(t, "bad.yaml", `
tenants:
  overrides:
    acme: {maximumQoS: 5, noSuchSetting: 1}
`))
	if err == nil {
		err = c.Validate()
	}
	if ce := configError(t, err); !hasProblem(ce, "tenants.overrides", "acme") {
		t.Fatalf("problems %q", ce.Problems)
	}
}

// nopRouter stands in for the node's dist service where only options are
// checked.
type nopRouter struct{}

func (nopRouter) PubAsync(string, *dist.Message, func(int, error)) {}
func (nopRouter) PubInline(context.Context, string, *dist.Message) (int, error, bool) {
	return 0, nil, false
}
func (nopRouter) AddRoute(context.Context, dist.Route, uint64) (bool, error) {
	return true, nil
}
func (nopRouter) RemoveRoute(context.Context, dist.Route, uint64) (bool, error) {
	return true, nil
}
func (nopRouter) Register(string, dist.Deliverer) {}
func (nopRouter) Unregister(string)               {}

// TestUsersExampleLoads keeps the README's example users file valid.
func TestUsersExampleLoads(t *testing.T) {
	c := DefaultConfig()
	c.Auth.Provider, c.Auth.UsersFile = "file", "users.example.yaml"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthProvider(); err != nil {
		t.Fatal(err)
	}
}
