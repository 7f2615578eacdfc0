package standalone

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// runMain runs Main and returns its exit code, stdout and stderr.
func runMain(t *testing.T, ctx context.Context, args []string, extra ...Command) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(ctx, args, &stdout, &stderr, extra...)
	return code, stdout.String(), stderr.String()
}

func TestMainVersion(t *testing.T) {
	code, out, errOut := runMain(t, context.Background(), []string{"version"})
	if code != 0 || errOut != "" {
		t.Fatalf("version: exit %d, stderr %q", code, errOut)
	}
	want := regexp.MustCompile(`^bifromq \S+ \(` + regexp.QuoteMeta(runtime.Version()) + `\)\n$`)
	if !want.MatchString(out) {
		t.Errorf("version printed %q, want %s", out, want)
	}
	if out != "bifromq "+Version()+" ("+runtime.Version()+")\n" {
		t.Errorf("version printed %q, Version() = %q", out, Version())
	}
	if code, _, _ := runMain(t, context.Background(), []string{"version", "extra"}); code != 2 {
		t.Errorf("version with an argument: exit %d, want 2", code)
	}
}

func TestMainHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"run", "--help"}} {
		code, out, errOut := runMain(t, context.Background(), args)
		if code != 0 {
			t.Errorf("%q: exit %d, want 0; stderr %q", args, code, errOut)
		}
		for _, want := range []string{"Usage:", "version", "--config", "--mqtt-tcp", "--seeds", "0.0.0.0"} {
			if !strings.Contains(out, want) {
				t.Errorf("%q: usage lacks %q:\n%s", args, want, out)
			}
		}
	}
}

func TestMainBadFlag(t *testing.T) {
	code, out, errOut := runMain(t, context.Background(), []string{"--no-such-flag"})
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut, "no-such-flag") {
		t.Errorf("stderr %q does not name the flag", errOut)
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}

	code, _, errOut = runMain(t, context.Background(), []string{"--mqtt-tcp", "127.0.0.1:0", "stray"})
	if code != 2 || !strings.Contains(errOut, "stray") {
		t.Errorf("stray argument: exit %d, stderr %q; want 2 naming it", code, errOut)
	}
}

func TestMainInvalidConfigListsEveryProblem(t *testing.T) {
	file := writeFile(t, "bad.yaml", "log: {level: loud}\nmqtt: {maxPacketSize: 10}\n")
	code, _, errOut := runMain(t, context.Background(), []string{
		"--config", file, "--api-addr", "nonsense", "--data-dir", t.TempDir(),
	})
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, want := range []string{"log.level:", "mqtt.maxPacketSize:", "api.addr:"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	code, _, errOut = runMain(t, context.Background(), []string{"--config", writeFile(t, "u.yaml", "mqtt: {tpc: {}}\n")})
	if code != 2 || !strings.Contains(errOut, "mqtt.tpc: unknown key") {
		t.Errorf("unknown key: exit %d, stderr %q", code, errOut)
	}
}

func TestMainUnknownCommand(t *testing.T) {
	code, _, errOut := runMain(t, context.Background(), []string{"frobnicate"})
	if code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestMainExtraCommand(t *testing.T) {
	var got []string
	bench := Command{
		Name:    "bench",
		Summary: "load a broker",
		Run: func(_ context.Context, args []string, stdout, _ io.Writer) int {
			got = args
			io.WriteString(stdout, "benched\n")
			return 3
		},
	}
	code, out, _ := runMain(t, context.Background(), []string{"bench", "--clients", "10"}, bench)
	if code != 3 || out != "benched\n" || strings.Join(got, " ") != "--clients 10" {
		t.Errorf("bench: exit %d, stdout %q, args %q", code, out, got)
	}
	if _, out, _ := runMain(t, context.Background(), []string{"help"}, bench); !strings.Contains(out, "load a broker") {
		t.Errorf("help does not list bench:\n%s", out)
	}
	if code, _, _ := runMain(t, context.Background(), []string{"help", "bench"}, bench); code != 3 || got[0] != "--help" {
		t.Errorf("help bench: exit %d, args %q; want bench run with --help", code, got)
	}

	defer func() {
		if recover() == nil {
			t.Error("a second command named version did not panic")
		}
	}()
	runMain(t, context.Background(), []string{"version"}, Command{Name: "version"})
}

func TestMainDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	l, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	code, _, errOut := runMain(t, context.Background(), []string{
		"--data-dir", dir, "--mqtt-tcp", "127.0.0.1:0", "--mqtt-ws", "off", "--api-addr", "off",
	})
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut, dir) || !strings.Contains(errOut, "in use") {
		t.Errorf("stderr %q does not say the data dir is in use", errOut)
	}
}
