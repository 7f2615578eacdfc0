package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
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

// TestSignalStopsGracefully runs a broker and stops it with SIGTERM, then
// SIGINT: each time it logs its addresses, stops cleanly and exits 0.
func TestSignalStopsGracefully(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := command(t,
				"--data-dir", filepath.Join(t.TempDir(), "data"),
				"--mqtt-tcp", "127.0.0.1:0", "--mqtt-ws", "off", "--api-addr", "127.0.0.1:0",
			)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			started := make(chan bool, 1)
			copied := make(chan struct{})
			go func() {
				defer close(copied)
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					log.WriteString(sc.Text() + "\n")
					if strings.Contains(sc.Text(), "bifromq started") {
						started <- true
					}
				}
				io.Copy(io.Discard, stderr)
			}()

			select {
			case <-started:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-copied
				cmd.Wait()
				t.Fatalf("no start line within 15s:\n%s", log.String())
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			<-copied
			err = cmd.Wait()
			if err != nil {
				t.Errorf("after %v: %v, want exit 0; log:\n%s", sig, err, log.String())
			}
			for _, want := range []string{"mqtt.tcp=127.0.0.1:", "api=127.0.0.1:", "bifromq stopped"} {
				if !strings.Contains(log.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, log.String())
				}
			}
		})
	}
}
