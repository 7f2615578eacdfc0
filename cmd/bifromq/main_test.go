package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bifromq-go/bifromq/testsuite"
)

// runAsMain makes the test binary run main() instead of the tests, so the
// tests can run the real binary (exit codes, signals) as a child process.
const runAsMain = "BIFROMQ_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsMain) == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

// command returns the test binary set up to run main with args.
func command(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), runAsMain+"=1")
	return cmd
}

// exitCode runs cmd and returns its exit code, stdout and stderr.
func exitCode(t *testing.T, cmd *exec.Cmd) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	default:
		t.Fatalf("running %v: %v", cmd.Args, err)
		return 0, "", ""
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := exitCode(t, command(t, "version"))
	if code != 0 || !strings.HasPrefix(out, "bifromq ") || !strings.Contains(out, "(go") {
		t.Errorf("version: exit %d, stdout %q", code, out)
	}
}

func TestUsageExitCodes(t *testing.T) {
	if code, out, _ := exitCode(t, command(t, "--help")); code != 0 || !strings.Contains(out, "Usage:") {
		t.Errorf("--help: exit %d, stdout %q; want 0 and the usage", code, out)
	}
	if code, _, errOut := exitCode(t, command(t, "--no-such-flag")); code != 2 || !strings.Contains(errOut, "no-such-flag") {
		t.Errorf("bad flag: exit %d, stderr %q; want 2 naming the flag", code, errOut)
	}
}

// broker is the real binary running as a child process.
type broker struct {
	cmd     *exec.Cmd
	log     *bytes.Buffer // complete once stop returned
	copied  chan struct{}
	mqttTCP string // host:port of the MQTT TCP listener, from the start line
}

// startBroker runs the binary on free loopback ports and waits for its
// start line.
func startBroker(t *testing.T) *broker {
	t.Helper()
	return startBrokerIn(t, filepath.Join(t.TempDir(), "data"))
}

// startBrokerIn runs the binary on dataDir, on free loopback ports, with
// extra arguments, and waits for its start line.
func startBrokerIn(t *testing.T, dataDir string, extra ...string) *broker {
	t.Helper()
	args := append([]string{
		"--data-dir", dataDir,
		"--mqtt-tcp", "127.0.0.1:0", "--mqtt-ws", "off", "--api-addr", "127.0.0.1:0",
		"--cluster-bind", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
	}, extra...)
	cmd := command(t, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &broker{cmd: cmd, log: &bytes.Buffer{}, copied: make(chan struct{})}
	started := make(chan string, 1)
	go func() {
		defer close(b.copied)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			b.log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "bifromq started") {
				_, addr, _ := strings.Cut(sc.Text(), "mqtt.tcp=")
				addr, _, _ = strings.Cut(addr, " ")
				started <- addr
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case b.mqttTCP = <-started:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-b.copied
		cmd.Wait()
		t.Fatalf("no start line within 15s:\n%s", b.log.String())
	}
	return b
}

// stop signals the broker and returns its exit error.
func (b *broker) stop(t *testing.T, sig os.Signal) error {
	t.Helper()
	if err := b.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	<-b.copied
	return b.cmd.Wait()
}

// TestSignalStopsGracefully runs a broker and stops it with SIGTERM, then
// SIGINT: each time it logs its addresses, stops cleanly and exits 0.
func TestSignalStopsGracefully(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			b := startBroker(t)
			if err := b.stop(t, sig); err != nil {
				t.Errorf("after %v: %v, want exit 0; log:\n%s", sig, err, b.log.String())
			}
			for _, want := range []string{"mqtt.tcp=127.0.0.1:", "api=127.0.0.1:", "bifromq stopped"} {
				if !strings.Contains(b.log.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, b.log.String())
				}
			}
		})
	}
}

// TestBinaryServesMosquittoPub runs the real binary and publishes to it with
// Debian's mosquitto_pub in every protocol version.
func TestBinaryServesMosquittoPub(t *testing.T) {
	pub := testsuite.RequireTool(t, "mosquitto_pub")
	b := startBroker(t)
	defer b.stop(t, syscall.SIGTERM)
	host, port, err := net.SplitHostPort(b.mqttTCP)
	if err != nil {
		t.Fatalf("start line address %q: %v", b.mqttTCP, err)
	}
	for _, v := range []string{"mqttv31", "mqttv311", "mqttv5"} {
		out, err := exec.Command(pub, "-h", host, "-p", port, "-V", v, "-q", "1", "-t", "t", "-m", "m").CombinedOutput()
		if err != nil {
			t.Errorf("mosquitto_pub -V %s: %v\n%s", v, err, out)
		}
	}
}
