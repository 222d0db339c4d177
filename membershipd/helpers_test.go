package membershipd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testConfig is a daemon on loopback with every port picked by the kernel
// and its own state dir.
func testConfig(t testing.TB) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeName = "test-node"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.NATSAddr = "127.0.0.1:0"
	cfg.MonitorPort = 0
	cfg.StateDir = t.TempDir()
	// Data-plane tests connect anonymously; the control-plane tests set
	// enforce themselves.
	cfg.BusAuth = BusAuthOff
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return cfg
}

// startDaemon opens and starts a daemon and shuts it down when the test ends.
func startDaemon(t testing.TB, cfg Config) *Daemon {
	t.Helper()
	d, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := d.Start(context.Background()); err != nil {
		d.Shutdown()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { d.Shutdown() })
	return d
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// getJSON fetches url and decodes its JSON body into v, returning the status.
func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: decode %q: %v", url, body, err)
		}
	}
	return resp.StatusCode
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listeningIPs reads the kernel's socket tables for TCP sockets in LISTEN
// state on port: the truth about a bind, whatever the config said.
func listeningIPs(t testing.TB, port int) []net.IP {
	t.Helper()
	var ips []net.IP
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // 0A = TCP_LISTEN
				continue
			}
			hostHex, portHex, _ := strings.Cut(fields[1], ":")
			p, _ := strconv.ParseUint(portHex, 16, 16)
			if int(p) != port {
				continue
			}
			ips = append(ips, procNetIP(t, hostHex))
		}
		f.Close()
	}
	return ips
}

// procNetIP decodes /proc/net/tcp's address: 32-bit words in host (little
// endian) order.
func procNetIP(t testing.TB, h string) net.IP {
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatalf("bad /proc/net address %q", h)
	}
	ip := make(net.IP, len(b))
	for i := 0; i < len(b); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return ip
}

func portOf(t testing.TB, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

func endpoint(d *Daemon, path string) string { return fmt.Sprintf("http://%s%s", d.HTTPAddr(), path) }

// jsonDecodeTee decodes resp's body into v and keeps the raw text in raw.
func jsonDecodeTee(resp *http.Response, raw *strings.Builder, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(io.TeeReader(resp.Body, raw)).Decode(v)
}

func readCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// getJSONQuiet is a GET that returns only the status (0 on a transport
// error), for polling.
func getJSONQuiet(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
