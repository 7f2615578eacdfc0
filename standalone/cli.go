package standalone

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bifromq-go/bifromq/mqtt"
)

// Command is a subcommand of the bifromq binary: `bifromq <Name> args...`.
// Run gets the arguments after the name and returns the process exit code
// (0 success, 1 failure, 2 bad usage). ctx is cancelled by SIGINT or SIGTERM.
type Command struct {
	Name    string
	Summary string // one line, for the usage text
	Run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// Main is the bifromq binary: it runs the command named by args[0] (args
// excludes the program name) and returns the process exit code. With no
// command, or when args[0] is a flag, it runs "run": a broker with the
// configuration the flags (and the --config file) give, until ctx is done.
//
// Built in are run, version and help. extra adds commands (such as bench)
// that live elsewhere; a name already taken is a programming error and
// panics.
//
// Exit codes: 0 after a clean run or stop; 1 when the broker fails to start
// or stop; 2 for a bad command line or configuration, with the whole error on
// stderr.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, extra ...Command) int {
	p := &program{}
	p.cmds = []Command{
		{Name: "run", Summary: "run a broker (the default command)", Run: p.run},
		{Name: "version", Summary: "print the version and exit", Run: printVersion},
		{Name: "help", Summary: "print this help and exit", Run: p.help},
	}
	for _, c := range extra {
		if p.find(c.Name) != nil {
			panic(fmt.Sprintf("standalone: command %q defined twice", c.Name))
		}
		p.cmds = append(p.cmds, c)
	}

	name := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	c := p.find(name)
	if c == nil {
		fmt.Fprintf(stderr, "bifromq: unknown command %q\n\n", name)
		p.usage(stderr)
		return 2
	}
	return c.Run(ctx, args, stdout, stderr)
}

type program struct {
	cmds []Command
}

func (p *program) find(name string) *Command {
	i := slices.IndexFunc(p.cmds, func(c Command) bool { return c.Name == name })
	if i < 0 {
		return nil
	}
	return &p.cmds[i]
}

func (p *program) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage:\n  bifromq [command] [flags]\n\nCommands:\n")
	for _, c := range p.cmds {
		fmt.Fprintf(w, "  %-10s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nFlags of run:\n")
	printFlags(w)
	fmt.Fprintf(w, "\nFlags override the config file, which overrides the defaults. The default\n"+
		"addresses bind 127.0.0.1 (this host only); use 0.0.0.0:<port> to serve the network.\n")
}

func (p *program) help(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if c := p.find(args[0]); c != nil && c.Name != "run" && c.Name != "help" {
			// Other commands print their own help.
			return c.Run(ctx, []string{"--help"}, stdout, stderr)
		}
	}
	p.usage(stdout)
	return 0
}

func printVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "bifromq version: takes no arguments, got %q\n", args)
		return 2
	}
	fmt.Fprintln(stdout, versionLine())
	return 0
}

// run is the run command.
func (p *program) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := DefaultConfig()
	rest, err := cfg.ApplyFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		p.usage(stdout)
		return 0
	}
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("unexpected arguments %q", rest)
	}
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		printConfigError(stderr, err)
		return 2
	}

	log, err := NewLogger(cfg.Log.Level, cfg.Log.Format, stderr)
	if err != nil { // Validate checked the level and format
		printConfigError(stderr, err)
		return 2
	}
	node, err := Start(ctx, cfg, WithLogger(log))
	if err != nil {
		log.Error("bifromq failed to start", "err", err)
		return 1
	}
	attrs := []any{"version", Version(), "dataDir", absPath(cfg.DataDir)}
	for _, k := range []mqtt.ListenerKind{mqtt.TCP, mqtt.TLS, mqtt.WS, mqtt.WSS} {
		if a := node.MQTTAddr(k); a != nil {
			attrs = append(attrs, "mqtt."+string(k), a.String())
		}
	}
	if a := node.APIAddr(); a != nil {
		attrs = append(attrs, "api", a.String())
	}
	log.Info("bifromq started", attrs...)

	<-ctx.Done()
	log.Info("bifromq stopping", "cause", context.Cause(ctx))
	if err := node.Close(); err != nil {
		log.Error("bifromq stopped with errors", "err", err)
		return 1
	}
	log.Info("bifromq stopped")
	return 0
}

// printConfigError writes a command-line or configuration error, one problem
// per line.
func printConfigError(w io.Writer, err error) {
	var ce *ConfigError
	if errors.As(err, &ce) {
		fmt.Fprintf(w, "bifromq: invalid configuration:\n")
		for _, p := range ce.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	} else {
		fmt.Fprintf(w, "bifromq: %v\n", err)
	}
	fmt.Fprintf(w, "Run 'bifromq --help' for usage.\n")
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
