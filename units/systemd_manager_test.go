package units

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unibus/unibus/internal/systemdtest"
)

// systemdFor drives the harness's user manager through its private socket,
// as unibus drives a node's.
func systemdFor(t *testing.T, h *systemdtest.Manager) *SystemdManager {
	m := NewSystemdManager(User)
	m.Address = "unix:path=" + h.HostPath(h.RuntimeDir()+"/systemd/private")
	m.JournalDirectory = h.JournalDir()
	t.Cleanup(m.Close)
	return m
}

func placeUnit(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The Manager interface over D-Bus against a real systemd: start waits
// for READY=1, restart makes a new invocation, stop ends the process.
func TestSystemdManagerLifecycle(t *testing.T) {
	h := systemdtest.Start(t, systemdtest.Options{})
	m := systemdFor(t, h)
	ctx := testCtx(t)

	v, err := m.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := MajorVersion(v); err != nil || n < 200 {
		t.Fatalf("Version %q → %d, %v", v, n, err)
	}
	path, err := m.UnitPath(ctx)
	if err != nil || !containsString(path, h.UnitDir()) {
		t.Fatalf("UnitPath = %v, %v; want it to hold %s", path, err, h.UnitDir())
	}

	placeUnit(t, h.UnitDir(), "notifier.service", `[Service]
Type=notify
NotifyAccess=all
ExecStart=/bin/sh -c 'echo starting; sleep 1; systemd-notify --ready --status=up; exec sleep 60'
`)
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := m.Status(ctx, "notifier.service"); err != nil || st.ActiveState != StateInactive {
		t.Fatalf("before start: %+v, %v", st, err)
	}
	if err := m.Start(ctx, "notifier.service"); err != nil {
		t.Fatal(err)
	}
	first, err := m.Status(ctx, "notifier.service")
	if err != nil || first.ActiveState != StateActive || first.StatusText != "up" || first.MainPID == 0 || first.InvocationID == "" {
		t.Fatalf("after start (must have waited for READY=1): %+v, %v", first, err)
	}
	if err := m.Restart(ctx, "notifier.service"); err != nil {
		t.Fatal(err)
	}
	second, err := m.Status(ctx, "notifier.service")
	if err != nil || second.ActiveState != StateActive || second.InvocationID == first.InvocationID || second.MainPID == first.MainPID {
		t.Fatalf("after restart: %+v (before %+v), %v", second, first, err)
	}
	if syscall.Kill(first.MainPID, 0) == nil {
		t.Fatalf("the first invocation's process %d outlived the restart", first.MainPID)
	}

	placeUnit(t, h.UnitDir(), "notifier.service", "[Service]\nType=notify\nExecStart=/bin/false\n")
	if st, _ := m.Status(ctx, "notifier.service"); !st.NeedDaemonReload {
		t.Fatalf("unit file changed on disk, NeedDaemonReload = false: %+v", st)
	}
	if err := m.Stop(ctx, "notifier.service"); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Status(ctx, "notifier.service"); st.ActiveState != StateInactive || st.MainPID != 0 {
		t.Fatalf("after stop: %+v", st)
	}
	if syscall.Kill(second.MainPID, 0) == nil {
		t.Fatalf("process %d still alive after stop", second.MainPID)
	}
}

// A start that fails says why, at once: the result, systemd's exit code
// by name, and what the service logged; not a timeout.
func TestSystemdManagerFailedStart(t *testing.T) {
	h := systemdtest.Start(t, systemdtest.Options{})
	m := systemdFor(t, h)
	ctx := testCtx(t)
	placeUnit(t, h.UnitDir(), "nocred.service", `[Service]
Type=notify
LoadCredential=tls.key:/nonexistent/unibus/client.key
ExecStart=/bin/sleep 60
`)
	placeUnit(t, h.UnitDir(), "badconfig.service", `[Service]
Type=notify
Restart=on-failure
ExecStart=/bin/sh -c 'echo "membershipd: --tls-key: open /x: no such file" >&2; exit 2'
`)
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for unit, want := range map[string][]string{
		"nocred.service":    {"result: exit-code", "status=243/CREDENTIALS"},
		"badconfig.service": {"result: exit-code", "status=2", "membershipd: --tls-key: open /x: no such file"},
	} {
		start := time.Now()
		err := m.Start(ctx, unit)
		if err == nil {
			t.Fatalf("%s started", unit)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: start error %q does not say %q", unit, err, w)
			}
		}
		t.Logf("%s: failed after %s: %v", unit, time.Since(start).Round(time.Millisecond), err)
	}
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// What plan says the user manager does not enforce matches what it does:
// a unit with DevicePolicy=closed opens a character device outside the
// policy (a tun node made for the test) exactly when
// LocalUserManagerNotEnforced names DevicePolicy=.
func TestSystemdUserManagerNotEnforcedIsTrue(t *testing.T) {
	h := systemdtest.Start(t, systemdtest.Options{})
	m := systemdFor(t, h)
	ctx := testCtx(t)
	dir := systemdtest.Dir(t)
	dev, out := filepath.Join(dir, "tun"), filepath.Join(dir, "out")
	if err := syscall.Mknod(dev, syscall.S_IFCHR|0o600, int(unixMkdev(10, 200))); err != nil {
		t.Skipf("cannot make a device node here: %v", err)
	}
	placeUnit(t, h.UnitDir(), "devpolicy.service", "[Service]\nType=oneshot\nDevicePolicy=closed\nStandardOutput=file:"+out+
		"\nExecStart=/bin/bash -c 'exec 3<>"+dev+" && echo opened || echo refused'\n")
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, "devpolicy.service"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	opened := strings.TrimSpace(string(b)) == "opened"
	claimed := containsString(LocalUserManagerNotEnforced(), "DevicePolicy=")
	t.Logf("DevicePolicy=closed: device %s; plan says not enforced: %v", strings.TrimSpace(string(b)), claimed)
	if opened != claimed {
		t.Fatalf("DevicePolicy=closed let the device open: %v; LocalUserManagerNotEnforced names it: %v", opened, claimed)
	}
}

func unixMkdev(major, minor uint32) uint64 {
	return uint64(major)<<8 | uint64(minor)
}
