package standalone

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// configFlag names the config file; see ApplyFlags.
const configFlag = "config"

// flagDef is one command-line flag that sets one configuration field.
type flagDef struct {
	name, usage string
	get         func(c *Config) string
	set         func(c *Config, v string)
}

// flagDefs are the flags of the run command that set a configuration field.
func flagDefs() []flagDef {
	addr := func(name, what string, field func(c *Config) *string) flagDef {
		return flagDef{
			name:  name,
			usage: "`host:port` of " + what + `, or "off" to disable it`,
			get:   func(c *Config) string { return *field(c) },
			set:   func(c *Config, v string) { *field(c) = v },
		}
	}
	str := func(name, usage string, field func(c *Config) *string) flagDef {
		return flagDef{
			name:  name,
			usage: usage,
			get:   func(c *Config) string { return *field(c) },
			set:   func(c *Config, v string) { *field(c) = v },
		}
	}
	return []flagDef{
		str("data-dir", "`dir`ectory of all state (created when missing)", func(c *Config) *string { return &c.DataDir }),
		addr("mqtt-tcp", "MQTT over TCP", func(c *Config) *string { return &c.MQTT.TCP.Addr }),
		addr("mqtt-tls", "MQTT over TLS (certificate files: config file)",
			func(c *Config) *string { return &c.MQTT.TLS.Addr }),
		addr("mqtt-ws", "MQTT over WebSocket", func(c *Config) *string { return &c.MQTT.WS.Addr }),
		addr("mqtt-wss", "MQTT over secure WebSocket (certificate files: config file)",
			func(c *Config) *string { return &c.MQTT.WSS.Addr }),
		addr("api-addr", "the HTTP API", func(c *Config) *string { return &c.API.Addr }),
		str("cluster-bind", "`host:port` of gossip (TCP and UDP)", func(c *Config) *string { return &c.Cluster.Bind }),
		str("raft-addr", "`host:port` of the Raft transport", func(c *Config) *string { return &c.Cluster.RaftAddr }),
		{
			name:  "seeds",
			usage: "comma-separated `host:port` gossip addresses of nodes to join",
			get:   func(c *Config) string { return strings.Join(c.Cluster.Seeds, ",") },
			set:   func(c *Config, v string) { c.Cluster.Seeds = splitList(v) },
		},
		str("log-level", "log `level`: debug, info, warn or error", func(c *Config) *string { return &c.Log.Level }),
		str("log-format", "log `format`: text or json", func(c *Config) *string { return &c.Log.Format }),
	}
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(v string) []string {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// newFlagSet returns the run command's flags, with defaults shown from d.
// It writes nothing: errors are returned and usage is printed by Usage.
func newFlagSet(d *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("bifromq", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.String(configFlag, "", "YAML config `file`; flags override it")
	for _, f := range flagDefs() {
		fs.String(f.name, f.get(d), f.usage)
	}
	return fs
}

// ApplyFlags parses command-line flags (either -flag or --flag) onto c and
// returns the arguments after them. When --config is given, c is first
// replaced by LoadConfig of that file; every other flag given then overrides
// its field, so flags win over the file and the file over the defaults.
// Flags not given leave c as it is.
//
// It returns flag.ErrHelp for -h or --help, a *ConfigError from loading the
// file, or another error for a malformed command line. It does not Validate.
func (c *Config) ApplyFlags(args []string) (rest []string, err error) {
	d := DefaultConfig()
	fs := newFlagSet(&d)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if f := fs.Lookup(configFlag); f.Value.String() != "" {
		loaded, err := LoadConfig(f.Value.String())
		if err != nil {
			return nil, err
		}
		*c = loaded
	}
	defs := make(map[string]flagDef)
	for _, f := range flagDefs() {
		defs[f.name] = f
	}
	fs.Visit(func(f *flag.Flag) {
		if def, ok := defs[f.Name]; ok {
			def.set(c, f.Value.String())
		}
	})
	return fs.Args(), nil
}

// printFlags writes the run command's flags and their defaults to w.
func printFlags(w io.Writer) {
	d := DefaultConfig()
	fs := newFlagSet(&d)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if name != "" {
			fmt.Fprintf(w, " %s", name)
		}
		fmt.Fprintf(w, "\n    \t%s", strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}
