package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/unibus/unibus/internal/scripttest"
)

func TestMain(m *testing.M) {
	// Lets a test run this binary as membershipd itself (TestSIGTERM).
	if os.Getenv("BE_MEMBERSHIPD") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
	}
	testscript.Main(m, map[string]func(){
		"membershipd": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		Cmds:                cmds(),
	})
}

func cmds() map[string]func(*testscript.TestScript, bool, []string) {
	c := scripttest.Commands()
	c["pki"] = cmdPKI
	c["agepass"] = cmdAgePass
	return c
}

// TestSIGTERM runs the real binary, waits until it is ready, sends SIGTERM
// as systemd does on stop, and expects a clean exit 0 within the bound.
func TestSIGTERM(t *testing.T) {
	dir := t.TempDir()
	cmd, stderr := startMembershipd(t, filepath.Join(dir, "state"), freePort(t), "--node-name", "sigterm-test")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; log:\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("still running 20s after SIGTERM; log:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "shutting down") {
		t.Errorf("log does not say it is shutting down:\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "membershipd.db")); err != nil {
		t.Errorf("state not kept after stop: %v", err)
	}
}

// startMembershipd runs this test binary as membershipd on dir, with extra
// flags, and waits for /readyz; the process is killed when the test ends.
func startMembershipd(t *testing.T, dir string, httpPort int, extra ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--nats-addr", "127.0.0.1:0", "--state-dir", dir}, extra...)...)
	cmd.Env = append(os.Environ(), "BE_MEMBERSHIPD=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, &stderr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 20s; log:\n%s", stderr.String())
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestMakeRun: the flags `make run` passes (RUN_FLAGS in the Makefile) are
// accepted, pass the plain-HTTP check without --allow-plain-http, keep the
// port README's `curl localhost:8470/healthz` uses, and start a daemon that
// answers /readyz (on free ports, so a running make run does not collide).
func TestMakeRun(t *testing.T) {
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	for _, line := range strings.Split(string(makefile), "\n") {
		if v, ok := strings.CutPrefix(line, "RUN_FLAGS :="); ok {
			flags = strings.Fields(v)
		}
	}
	if !strings.Contains(string(makefile), "./$(BIN)/membershipd $(RUN_FLAGS)") || len(flags) == 0 {
		t.Fatal("Makefile: no RUN_FLAGS, or make run does not pass them")
	}
	cfg, _, err := parseFlags(flags, io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatalf("make run's flags %q: %v", flags, err)
	}
	host, port, _ := net.SplitHostPort(cfg.HTTPAddr)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() || port != "8470" {
		t.Fatalf("make run serves HTTP on %s; want a loopback address on port 8470 (README: curl localhost:8470/healthz)", cfg.HTTPAddr)
	}
	if cfg.AllowPlainHTTP || cfg.TLSCert != "" {
		t.Fatalf("make run passes --allow-plain-http or a certificate; loopback needs neither")
	}
	httpPort := freePort(t)
	for i := range flags {
		if i > 0 && (flags[i-1] == "--http-addr" || flags[i-1] == "--nats-addr") {
			h, _, _ := net.SplitHostPort(flags[i])
			flags[i] = net.JoinHostPort(h, "0")
			if flags[i-1] == "--http-addr" {
				flags[i] = net.JoinHostPort(h, strconv.Itoa(httpPort))
			}
		}
	}
	startMembershipd(t, filepath.Join(t.TempDir(), "local_files"), httpPort, flags...)
}
