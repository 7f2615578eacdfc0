package standalone

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bifromq-go/bifromq/basekv"
	"github.com/bifromq-go/bifromq/mqtt"
	"github.com/bifromq-go/bifromq/mqtt/settings"
)

// ConfigError lists every problem found in a configuration. Each problem
// starts with the YAML path of the field it is about (for a file, with the
// file name and line before it).
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	if len(e.Problems) == 1 {
		return ErrConfig.Error() + ": " + e.Problems[0]
	}
	return fmt.Sprintf("%s (%d problems): %s", ErrConfig, len(e.Problems), strings.Join(e.Problems, "; "))
}

// Unwrap returns ErrConfig.
func (e *ConfigError) Unwrap() error { return ErrConfig }

// maxProtocolPacketSize is MQTT's largest packet: the largest remaining
// length plus the largest fixed header.
const maxProtocolPacketSize = 268435455 + 5

// problems collects configuration problems.
type problems []string

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, path+": "+fmt.Sprintf(format, args...))
}

// Validate checks every field and reports every problem at once, as a
// *ConfigError, or returns nil. Besides values, ranges and addresses it
// checks that the certificate files of the TLS and WSS listeners that are
// on exist, and that no two listeners claim one port on overlapping hosts.
func (c *Config) Validate() error {
	var p problems
	if c.DataDir == "" {
		p.add("dataDir", "required")
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		p.add("log.level", "%v", err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		p.add("log.format", "%q is not one of text, json", c.Log.Format)
	}
	c.validateMQTT(&p)
	checkListenAddr(&p, "api.addr", c.API.Addr, true)
	if strings.ContainsFunc(c.API.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		p.add("api.token", "must not contain spaces or control characters")
	}
	c.validateCluster(&p)
	c.validateAuth(&p)
	c.validateTenants(&p)
	c.checkDuplicateAddrs(&p)
	if len(p) == 0 {
		return nil
	}
	return &ConfigError{Problems: p}
}

func (c *Config) validateMQTT(p *problems) {
	m := &c.MQTT
	checkListenAddr(p, "mqtt.tcp.addr", m.TCP.Addr, true)
	checkListenAddr(p, "mqtt.tls.addr", m.TLS.Addr, true)
	checkListenAddr(p, "mqtt.ws.addr", m.WS.Addr, true)
	checkListenAddr(p, "mqtt.wss.addr", m.WSS.Addr, true)
	if !isOff(m.TLS.Addr) {
		checkTLS(p, "mqtt.tls", m.TLS.TLSConfig)
	}
	if !isOff(m.WS.Addr) {
		checkPath(p, "mqtt.ws.path", m.WS.Path)
	}
	if !isOff(m.WSS.Addr) {
		checkPath(p, "mqtt.wss.path", m.WSS.Path)
		checkTLS(p, "mqtt.wss", m.WSS.TLSConfig)
	}
	if isOff(m.TCP.Addr) && isOff(m.TLS.Addr) && isOff(m.WS.Addr) && isOff(m.WSS.Addr) {
		p.add("mqtt", "every listener is off: set at least one of mqtt.tcp.addr, mqtt.tls.addr, "+
			"mqtt.ws.addr, mqtt.wss.addr to an address")
	}

	positive := func(path string, d time.Duration) {
		if d <= 0 {
			p.add(path, "must be positive, got %v", d)
		}
	}
	positive("mqtt.connectTimeout", m.ConnectTimeout)
	positive("mqtt.writeTimeout", m.WriteTimeout)
	positive("mqtt.drainTimeout", m.DrainTimeout)
	inRange := func(path string, v, lo, hi int) {
		if v < lo || v > hi {
			p.add(path, "%d is outside [%d, %d]", v, lo, hi)
		}
	}
	if m.MaxConnections < 0 {
		p.add("mqtt.maxConnections", "%d is negative (0 means no cap)", m.MaxConnections)
	}
	if m.ConnectRate < 0 {
		p.add("mqtt.connectRate", "%v is negative (0 means no cap)", m.ConnectRate)
	}
	if m.ConnectBurst < 0 {
		p.add("mqtt.connectBurst", "%d is negative", m.ConnectBurst)
	}
	inRange("mqtt.maxPacketSize", m.MaxPacketSize, 64, maxProtocolPacketSize)
	inRange("mqtt.maxKeepAlive", m.MaxKeepAlive, 0, 65535)
	inRange("mqtt.maxClientIDLength", m.MaxClientIDLength, 1, 65535)
	inRange("mqtt.maxInflight", m.MaxInflight, 1, 65535)
	inRange("mqtt.sessionQueue", m.SessionQueue, 1, 1<<30)
	inRange("mqtt.qos0Queue", m.QoS0Queue, 1, 1<<30)
	if m.QueueBudget < 1 {
		p.add("mqtt.queueBudget", "%d is not positive", m.QueueBudget)
	}
	switch basekv.LogDBSize(c.Store.LogDB) {
	case basekv.LogDBTiny, basekv.LogDBSmall, basekv.LogDBDefault:
	default:
		p.add("store.logDB", "%q is not tiny, small or default", c.Store.LogDB)
	}
}

func (c *Config) validateCluster(p *problems) {
	cl := &c.Cluster
	if cl.Env == "" {
		p.add("cluster.env", "required")
	} else if strings.ContainsFunc(cl.Env, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		p.add("cluster.env", "%q must not contain spaces or control characters", cl.Env)
	}
	checkListenAddr(p, "cluster.bind", cl.Bind, false)
	checkListenAddr(p, "cluster.raftAddr", cl.RaftAddr, false)
	if cl.Advertise != "" {
		checkDialAddr(p, "cluster.advertise", cl.Advertise)
	}
	for i, s := range cl.Seeds {
		checkDialAddr(p, fmt.Sprintf("cluster.seeds[%d]", i), s)
	}
}

// checkListenAddr checks an address to listen on: host:port with a numeric
// port (0 picks one), or off when allowOff.
func checkListenAddr(p *problems, path, addr string, allowOff bool) {
	switch {
	case addr == "" && allowOff:
		p.add(path, "required: host:port, or %q to disable", Off)
		return
	case addr == "":
		p.add(path, "required: host:port")
		return
	case isOff(addr) && allowOff:
		return
	case isOff(addr):
		p.add(path, "cannot be %q", Off)
		return
	}
	if _, _, err := splitAddr(addr); err != nil {
		p.add(path, "%v", err)
	}
}

// checkDialAddr checks an address other nodes dial: a host and a non-zero port.
func checkDialAddr(p *problems, path, addr string) {
	host, port, err := splitAddr(addr)
	switch {
	case err != nil:
		p.add(path, "%v", err)
	case host == "":
		p.add(path, "%q has no host", addr)
	case port == 0:
		p.add(path, "%q: port 0 cannot be dialled", addr)
	}
}

// splitAddr splits host:port and checks the port is a number in [0, 65535].
func splitAddr(addr string) (host string, port int, err error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	n, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q: port %q is not a number in [0, 65535]", addr, ps)
	}
	return host, int(n), nil
}

func checkPath(p *problems, path, v string) {
	if !strings.HasPrefix(v, "/") {
		p.add(path, "%q must start with /", v)
	}
}

// checkTLS checks the certificate settings of a listener that is on.
func checkTLS(p *problems, prefix string, t TLSConfig) {
	file := func(key, v, why string) {
		path := prefix + "." + key
		if v == "" {
			if why != "" {
				p.add(path, "required %s", why)
			}
			return
		}
		if fi, err := os.Stat(v); err != nil {
			p.add(path, "%v", err)
		} else if fi.IsDir() {
			p.add(path, "%s is a directory", v)
		}
	}
	file("certFile", t.CertFile, "when "+prefix+".addr is set")
	file("keyFile", t.KeyFile, "when "+prefix+".addr is set")
	switch mqtt.ClientAuth(t.ClientAuth) {
	case mqtt.ClientAuthNone, mqtt.ClientAuthRequest:
		file("clientCAFile", t.ClientCAFile, "")
	case mqtt.ClientAuthRequire:
		file("clientCAFile", t.ClientCAFile, "when "+prefix+".clientAuth is require")
	default:
		p.add(prefix+".clientAuth", "%q is not one of none, request, require", t.ClientAuth)
	}
}

// checkDuplicateAddrs reports two listeners that would bind the same port
// on overlapping hosts. Port 0 never clashes.
func (c *Config) checkDuplicateAddrs(p *problems) {
	type bound struct {
		path, addr, host string
		port             int
	}
	var seen []bound
	for _, a := range []struct{ path, addr string }{
		{"mqtt.tcp.addr", c.MQTT.TCP.Addr},
		{"mqtt.tls.addr", c.MQTT.TLS.Addr},
		{"mqtt.ws.addr", c.MQTT.WS.Addr},
		{"mqtt.wss.addr", c.MQTT.WSS.Addr},
		{"api.addr", c.API.Addr},
		{"cluster.bind", c.Cluster.Bind},
		{"cluster.raftAddr", c.Cluster.RaftAddr},
	} {
		if isOff(a.addr) {
			continue
		}
		host, port, err := splitAddr(a.addr)
		if err != nil || port == 0 {
			continue // reported by checkListenAddr, or cannot clash
		}
		b := bound{path: a.path, addr: a.addr, host: normalHost(host), port: port}
		for _, s := range seen {
			if s.port == b.port && (s.host == b.host || s.host == "" || b.host == "") {
				p.add(b.path, "%s clashes with %s (%s)", b.addr, s.path, s.addr)
				break
			}
		}
		seen = append(seen, b)
	}
}

// normalHost returns host in a comparable form; "" stands for every
// interface.
func normalHost(host string) string {
	ip := net.ParseIP(host)
	switch {
	case host == "":
		return ""
	case ip == nil:
		return strings.ToLower(host)
	case ip.IsUnspecified():
		return ""
	default:
		return ip.String()
	}
}

func (c *Config) validateAuth(p *problems) {
	a := &c.Auth
	switch a.Provider {
	case "dev":
	case "file":
		if a.UsersFile == "" {
			p.add("auth.usersFile", "required with provider file")
		}
	case "webhook":
		if a.Webhook.URL == "" {
			p.add("auth.webhook.url", "required with provider webhook")
		}
		if a.Webhook.Timeout < 0 || a.Webhook.CacheTTL < 0 {
			p.add("auth.webhook", "timeout and cacheTTL cannot be negative")
		}
	case "jwt":
		if (a.JWT.SecretFile == "") == (a.JWT.PublicKeyFile == "") {
			p.add("auth.jwt", "set exactly one of secretFile (HS256) and publicKeyFile (RS256)")
		}
	default:
		p.add("auth.provider", "%q is not one of dev, file, webhook, jwt", a.Provider)
	}
	if a.DenySubscribeCode != "notAuthorized" && a.DenySubscribeCode != "unspecified" {
		p.add("auth.denySubscribeCode", "%q is not notAuthorized or unspecified", a.DenySubscribeCode)
	}
	if a.V3PublishDenied != "drop" && a.V3PublishDenied != "disconnect" {
		p.add("auth.v3PublishDenied", "%q is not drop or disconnect", a.V3PublishDenied)
	}
}

func (c *Config) validateTenants(p *problems) {
	report := func(path string, err error) {
		for _, e := range unjoin(err) {
			p.add(path, "%s", strings.TrimPrefix(e.Error(), settings.ErrInvalid.Error()+": "))
		}
	}
	report("tenants.defaults", c.Tenants.Defaults.Validate())
	ts, err := c.Tenants.TenantSettings()
	if err != nil {
		p.add("tenants.overrides", "%v", err)
	}
	for t, s := range ts {
		report("tenants.overrides."+t, s.Validate())
	}
}

// unjoin lists the errors of an errors.Join.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
