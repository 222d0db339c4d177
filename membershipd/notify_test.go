package membershipd

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestSystemdNotify listens on a real unixgram socket as systemd would and
// checks the daemon says READY=1 once it serves and STOPPING=1 on shutdown.
// (Every other test runs without NOTIFY_SOCKET, the normal case off systemd.)
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)

	d := startDaemon(t, testConfig(t))
	if got := readNotify(t, conn); got != "READY=1" {
		t.Fatalf("first notification %q; want READY=1", got)
	}
	// READY=1 promises service: /readyz must already agree.
	if code := getJSON(t, endpoint(d, "/readyz"), nil); code != 200 {
		t.Fatalf("READY=1 sent but /readyz is %d", code)
	}
	d.Shutdown()
	if got := readNotify(t, conn); got != "STOPPING=1" {
		t.Fatalf("notification on shutdown %q; want STOPPING=1", got)
	}
}

func readNotify(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := conn.ReadFromUnix(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}
