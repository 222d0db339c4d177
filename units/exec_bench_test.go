package units

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkExecStartToReady compares membershipd started by the exec
// manager with the same binary run directly, in interleaved rounds:
// time to READY=1 and to /readyz 200. Medians are reported
// (make bench-exec).
func BenchmarkExecStartToReady(b *testing.B) {
	bin := membershipd(b)
	root := b.TempDir()
	m := testManager(root)
	body, execPort := membershipdUnit(b, bin, filepath.Join(root, "k"))
	os.WriteFile(filepath.Join(root, "k"), []byte("k"), 0o600)
	// no ExecStartPre in the comparison: the direct run has none either
	body = strings.Replace(body, "ExecStartPre=", "#ExecStartPre=", 1)
	service(b, root, "m.service", body, nil)
	directPort := freePort(b)
	direct := []string{bin, "--node-name", "n1", "--state-dir", filepath.Join(root, "direct"),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", directPort), "--nats-addr", fmt.Sprintf("127.0.0.1:%d", freePort(b)),
		"--monitor-port", fmt.Sprint(freePort(b)), "--bus-auth", "warn"}
	ctx := context.Background()
	var dReady, dHTTP, eReady, eHTTP []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, h := runDirect(b, direct, directPort)
		dReady, dHTTP = append(dReady, r), append(dHTTP, h)

		t0 := time.Now()
		if err := m.Start(ctx, "m.service"); err != nil {
			b.Fatal(err)
		}
		eReady = append(eReady, time.Since(t0))
		for readyz(execPort) != 200 {
			time.Sleep(time.Millisecond)
		}
		eHTTP = append(eHTTP, time.Since(t0))
		if err := m.Stop(ctx, "m.service"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	med := func(ds []time.Duration) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[len(s)/2].Microseconds()) / 1000
	}
	b.ReportMetric(med(dReady), "direct-ready-ms")
	b.ReportMetric(med(eReady), "exec-ready-ms")
	b.ReportMetric(med(dHTTP), "direct-readyz-ms")
	b.ReportMetric(med(eHTTP), "exec-readyz-ms")
	b.ReportMetric(0, "ns/op")
}

// runDirect starts the daemon with a notify socket of our own, and
// returns the time to READY=1 and to /readyz 200; then stops it.
func runDirect(b *testing.B, argv []string, port int) (time.Duration, time.Duration) {
	dir, _ := os.MkdirTemp("", "unibus-bench-")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	t0 := time.Now()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			b.Fatal(err)
		}
		if strings.Contains(string(buf[:n]), "READY=1") {
			break
		}
	}
	ready := time.Since(t0)
	for readyz(port) != 200 {
		time.Sleep(time.Millisecond)
	}
	h := time.Since(t0)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	return ready, h
}
