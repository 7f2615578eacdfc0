package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// Scenarios.
const (
	scenarioConn = "conn"
	scenarioPub  = "pub"
	scenarioSub  = "sub"
)

// minPayload is the smallest payload: send time and sequence number.
const minPayload = 16

// options are the parsed command line of one bench run.
type options struct {
	scenario    string
	host        string
	port        int
	clients     int
	topic       string
	qos         int
	size        int
	rate        float64
	messages    uint64
	duration    time.Duration
	version     int
	clean       bool
	expiry      uint64
	prefix      string
	inflight    int
	expect      uint64
	idle        time.Duration
	interval    time.Duration
	tls         bool
	ws          bool
	cafile      string
	insecure    bool
	path        string
	allowRemote bool
	rxTime      bool
	quiet       bool

	// ready, when set (by tests), is called once every client has
	// connected (and, for sub, subscribed).
	ready func()
}

// defaultOptions returns the options of a run given no flags.
func defaultOptions(scenario string) options {
	return options{
		scenario: scenario,
		host:     "127.0.0.1",
		port:     1883,
		clients:  1,
		topic:    "bench/%i",
		size:     64,
		duration: 60 * time.Second,
		version:  5,
		clean:    true,
		expiry:   3600,
		prefix:   "bench-" + scenario + "-",
		inflight: 100,
		idle:     5 * time.Second,
		path:     "/mqtt",
	}
}

// newFlagSet binds the flags of a run to o. It writes nothing: parse errors
// are returned and usage is printed by printUsage.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("bifromq bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.host, "h", o.host, "broker `host`")
	fs.IntVar(&o.port, "p", o.port, "broker `port`")
	fs.IntVar(&o.clients, "c", o.clients, "number of `clients`")
	fs.StringVar(&o.topic, "t", o.topic, "`topic` (pub) or filter (sub); %i is the client index, from 0")
	fs.IntVar(&o.qos, "q", o.qos, "`qos` 0, 1 or 2")
	fs.IntVar(&o.size, "s", o.size, "payload `size` in bytes, at least 16")
	fs.Float64Var(&o.rate, "r", o.rate, "pub: `rate` in messages/s per publisher; 0 as fast as possible")
	fs.Uint64Var(&o.messages, "n", o.messages, "pub: `messages` per publisher; 0 until -d")
	fs.DurationVar(&o.duration, "d", o.duration, "hard bound of the run (`duration`), then a clean stop and the summary")
	fs.IntVar(&o.version, "V", o.version, "MQTT `version`: 3 (3.1.1) or 5")
	fs.BoolVar(&o.clean, "clean", o.clean, "clean session (v3) / clean start (v5); -clean=false for persistent sessions")
	fs.Uint64Var(&o.expiry, "x", o.expiry, "v5 session `expiry` in seconds with -clean=false")
	fs.StringVar(&o.prefix, "i", o.prefix, "client id `prefix`; the id is prefix + index")
	fs.IntVar(&o.inflight, "inflight", o.inflight, "pub: unacknowledged QoS 1/2 messages per publisher (`n`)")
	fs.Uint64Var(&o.expect, "expect", o.expect, "sub: stop once `n` messages were received in total; 0 no bound")
	fs.DurationVar(&o.idle, "idle", o.idle, "sub: stop when nothing arrived for this `duration` after the first message; 0 never")
	fs.DurationVar(&o.interval, "interval", o.interval, "pause (`duration`) between starting clients")
	fs.BoolVar(&o.tls, "tls", o.tls, "use TLS (with -ws: WSS)")
	fs.BoolVar(&o.ws, "ws", o.ws, "use WebSocket (with -tls: WSS)")
	fs.StringVar(&o.cafile, "cafile", o.cafile, "PEM `file` of the CAs that sign the server certificate (TLS)")
	fs.BoolVar(&o.insecure, "insecure", o.insecure, "do not verify the server certificate (TLS)")
	fs.StringVar(&o.path, "path", o.path, "WebSocket `path`")
	fs.BoolVar(&o.allowRemote, "allow-remote", o.allowRemote, "allow a -h that is not loopback")
	fs.BoolVar(&o.quiet, "quiet", o.quiet, "no progress lines")
	fs.BoolVar(&o.rxTime, "rxtime", o.rxTime, "sub: latency up to the kernel's receive time of each message, leaving out the tool's own scheduling (plain TCP on Linux)")
	return fs
}

// parseArgs parses the arguments after "bench". It returns flag.ErrHelp
// for -help or --help (or "help"), and a validation error listing every
// problem otherwise.
func parseArgs(args []string) (options, error) {
	if len(args) == 0 {
		return options{}, errors.New("no scenario: want conn, pub or sub")
	}
	switch args[0] {
	case "-help", "--help", "help":
		return options{}, flag.ErrHelp
	case scenarioConn, scenarioPub, scenarioSub:
	default:
		return options{}, fmt.Errorf("unknown scenario %q: want conn, pub or sub", args[0])
	}
	o := defaultOptions(args[0])
	fs := newFlagSet(&o)
	if err := fs.Parse(args[1:]); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o, o.validate()
}

// validate reports every problem of o at once.
func (o *options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.host == "" {
		bad("-h: empty host")
	}
	if o.port < 1 || o.port > 65535 {
		bad("-p %d: not a port (1-65535)", o.port)
	}
	if o.clients < 1 {
		bad("-c %d: need at least one client", o.clients)
	}
	if o.qos < 0 || o.qos > 2 {
		bad("-q %d: not 0, 1 or 2", o.qos)
	}
	if o.size < minPayload || o.size > packet.MaxRemaining-65536 {
		bad("-s %d: payload size must be at least %d (send time and sequence number)", o.size, minPayload)
	}
	if o.rate < 0 || math.IsNaN(o.rate) || o.rate > 1e9 {
		bad("-r %v: not a rate (0 or more messages/s)", o.rate)
	}
	if o.duration <= 0 {
		bad("-d %v: must be positive", o.duration)
	}
	if o.version != 3 && o.version != 5 {
		bad("-V %d: not 3 (MQTT 3.1.1) or 5", o.version)
	}
	if o.expiry > 0xFFFFFFFF {
		bad("-x %d: over the maximum session expiry 4294967295", o.expiry)
	}
	if o.inflight < 1 || o.inflight > 65535 {
		bad("-inflight %d: not 1-65535", o.inflight)
	}
	if o.idle < 0 {
		bad("-idle %v: negative", o.idle)
	}
	if o.interval < 0 {
		bad("-interval %v: negative", o.interval)
	}
	if !o.tls && (o.cafile != "" || o.insecure) {
		bad("-cafile and -insecure need -tls")
	}
	if o.rxTime && (o.scenario != scenarioSub || o.tls || o.ws) {
		bad("-rxtime: only for sub over plain TCP")
	}
	if !strings.HasPrefix(o.path, "/") {
		bad("-path %q: must start with /", o.path)
	}
	// The topic of client 0 stands for all: %i only ever becomes digits.
	switch t := o.clientTopic(0); o.scenario {
	case scenarioPub:
		if err := packet.ValidateTopicName(t); err != nil {
			bad("-t %q: not a topic name: %v", o.topic, err)
		}
	case scenarioSub:
		if err := packet.ValidateTopicFilter(t); err != nil {
			bad("-t %q: not a topic filter: %v", o.topic, err)
		}
	}
	return errors.Join(errs...)
}

// clientTopic is the topic (pub) or filter (sub) of client i.
func (o *options) clientTopic(i int) string {
	return strings.ReplaceAll(o.topic, "%i", strconv.Itoa(i))
}

// clientID is the client identifier of client i.
func (o *options) clientID(i int) string { return o.prefix + strconv.Itoa(i) }

// protocol is the packet version of -V.
func (o *options) protocol() packet.Version {
	if o.version == 3 {
		return packet.V311
	}
	return packet.V5
}

// printUsage writes the help of the bench command to w.
func printUsage(w io.Writer) {
	fmt.Fprintf(w, `Usage:
  bifromq bench conn|pub|sub [flags]

Scenarios:
  conn   open -c connections and hold them until -d; connect latency
  pub    -c publishers at -r messages/s each, -n messages each or until -d
  sub    -c subscribers; end-to-end latency from the payload's send time;
         stops at -expect messages, after -idle without messages, or at -d

Flags:
`)
	o := defaultOptions("<scenario>")
	fs := newFlagSet(&o)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  -%s", f.Name)
		if name != "" {
			fmt.Fprintf(w, " %s", name)
		}
		fmt.Fprintf(w, "\n    \t%s", usage)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprintf(w, `
Without -allow-remote, -h must resolve to loopback addresses only.
At the end one line goes to stdout:
  summary scenario=S clients=N connected=N sent=N received=N errors=N duration_s=F rate=F p50_ms=F p99_ms=F p90_ms=F p999_ms=F max_ms=F
Exit codes: 0 ok, 1 a client failed (connect, refusal, lost connection), 2 bad usage.
`)
}
