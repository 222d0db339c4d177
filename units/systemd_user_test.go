package units

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// linkUnit writes a unit file outside the manager's unit folders, links it
// (systemctl --user link) and reloads, the way apply installs units.
func linkUnit(t *testing.T, m *userManager, name, body string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.Systemctl(ctx, "link", p); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatal(err)
	}
}

func TestSystemdUserManagerRunsLinkedUnit(t *testing.T) {
	m := startUserManager(t)
	ctx := context.Background()
	linkUnit(t, m, "sleeper.service", "[Service]\nExecStart=/bin/sleep 60\n")
	if _, err := m.Systemctl(ctx, "start", "sleeper.service"); err != nil {
		t.Fatal(err)
	}
	if got := m.Show(t, "sleeper.service", "ActiveState"); got != StateActive {
		t.Fatalf("sleeper.service ActiveState = %q after start, want active", got)
	}
	pid, err := strconv.Atoi(m.Show(t, "sleeper.service", "MainPID"))
	if err != nil || pid == 0 {
		t.Fatalf("sleeper.service MainPID = %d (%v), want the sleep's PID", pid, err)
	}
	// The process systemd reports is real and in the unit's own cgroup.
	cg, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil || !strings.Contains(string(cg), "/app.slice/sleeper.service") {
		t.Fatalf("MainPID %d cgroup = %q (%v), want it under app.slice/sleeper.service", pid, cg, err)
	}
	if _, err := m.Systemctl(ctx, "stop", "sleeper.service"); err != nil {
		t.Fatal(err)
	}
	if got := m.Show(t, "sleeper.service", "ActiveState"); got != StateInactive {
		t.Fatalf("sleeper.service ActiveState = %q after stop, want inactive", got)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("sleep (pid %d) still alive after stop", pid)
	}
}

func TestSystemdUserManagerNotifyReady(t *testing.T) {
	m := startUserManager(t)
	ctx := context.Background()
	// READY=1 comes after a second; a start that did not wait for it would
	// see activating.
	linkUnit(t, m, "notifier.service", `[Service]
Type=notify
NotifyAccess=all
ExecStart=/bin/sh -c 'sleep 1; systemd-notify --ready --status=up; exec sleep 60'
TimeoutStartSec=20
`)
	if _, err := m.Systemctl(ctx, "start", "notifier.service"); err != nil {
		t.Fatal(err)
	}
	if got := m.Show(t, "notifier.service", "ActiveState"); got != StateActive {
		t.Fatalf("notifier.service ActiveState = %q after start, want active", got)
	}
	if got := m.Show(t, "notifier.service", "StatusText"); got != "up" {
		t.Fatalf("notifier.service StatusText = %q, want the STATUS= it sent (up)", got)
	}
}
