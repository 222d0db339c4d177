package units

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/unibus/unibus/internal/systemdtest"
)

// linkUnit writes a unit file outside the manager's unit folders, links it
// (systemctl --user link) and reloads, the way apply installs units.
func linkUnit(t *testing.T, m *systemdtest.Manager, name, body string) {
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
	m := systemdtest.Start(t, systemdtest.Options{})
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
	m := systemdtest.Start(t, systemdtest.Options{})
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

// sandboxProbe prints, one per line, what a service sees of its sandbox.
// $1 is a file in the host's /tmp, $2 a loopback port that accepts. No
// single quotes: it goes into ExecStart= inside them.
const sandboxProbe = `echo uid=$(id -u)
touch /usr/.probe 2>/dev/null && echo usr=writable || echo usr=read-only
echo root-mode=$(stat -c %a /root)
test -e "$1" && echo host-tmp=visible || echo host-tmp=hidden
grep -E "^(NoNewPrivs|Seccomp|CapBnd):" /proc/self/status | tr -d "[:blank:]"
timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$2" 2>/dev/null && echo tcp=connected || echo tcp=blocked
`

// probeUnit is a oneshot that runs sandboxProbe under the given directives
// and returns what it printed, by key.
func probeUnit(t *testing.T, m *systemdtest.Manager, name, directives string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	marker, out := filepath.Join(dir, "marker"), filepath.Join(dir, "probe.out")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	// One line, since ExecStart= is one; $, % and \ are systemd's in a unit
	// file, doubled they reach bash as they are.
	script := strings.NewReplacer("$", "$$", "%", "%%", "\\", "\\\\", "\n", "; ").Replace(strings.TrimSpace(sandboxProbe))
	linkUnit(t, m, name, "[Service]\nType=oneshot\nStandardOutput=file:"+out+"\nStandardError=file:"+out+"\n"+
		directives+"\nExecStart=/bin/bash -c '"+script+"' probe "+marker+" "+port+"\n")
	if _, err := m.Systemctl(context.Background(), "start", name); err != nil {
		b, _ := os.ReadFile(out)
		t.Fatalf("%v\nprobe output:\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// "key=value" from the probe, "Key:value" from /proc/self/status
		if i := strings.IndexAny(line, "=:"); i > 0 {
			seen[line[:i]] = line[i+1:]
		}
	}
	return seen
}

// The sandboxing directives the rendered units rely on, as the user manager
// applies them: each probe line differs from the unsandboxed control's.
func TestSystemdUserManagerSandbox(t *testing.T) {
	m := systemdtest.Start(t, systemdtest.Options{})
	plain := probeUnit(t, m, "plain.service", "")
	boxed := probeUnit(t, m, "boxed.service", `DynamicUser=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelLogs=yes
NoNewPrivileges=yes
CapabilityBoundingSet=
SystemCallFilter=@system-service
IPAddressDeny=any`)
	t.Logf("unsandboxed: %v", plain)
	t.Logf("sandboxed:   %v", boxed)
	want := map[string][2]string{ // key: unsandboxed, sandboxed
		"usr":        {"writable", "read-only"},             // ProtectSystem=strict
		"root-mode":  {"700", "0"},                          // ProtectHome=yes
		"host-tmp":   {"visible", "hidden"},                 // PrivateTmp=yes
		"NoNewPrivs": {"0", "1"},                            // NoNewPrivileges=yes
		"Seccomp":    {"0", "2"},                            // SystemCallFilter=
		"CapBnd":     {plain["CapBnd"], "0000000000000000"}, // CapabilityBoundingSet=
		"tcp":        {"connected", "blocked"},              // IPAddressDeny=any
	}
	for k, w := range want {
		if plain[k] != w[0] || boxed[k] != w[1] {
			t.Errorf("%s: unsandboxed %q sandboxed %q, want %q and %q", k, plain[k], boxed[k], w[0], w[1])
		}
	}
	if plain["uid"] != "0" || boxed["uid"] == "0" || boxed["uid"] == "" {
		t.Errorf("uid: unsandboxed %q sandboxed %q, want 0 and a dynamic user", plain["uid"], boxed["uid"])
	}
	if plain["CapBnd"] == "" || plain["CapBnd"] == "0000000000000000" {
		t.Errorf("unsandboxed CapBnd %q: the comparison proves nothing", plain["CapBnd"])
	}
}

// LoadCredential= reaches the service: systemd copies the file into the
// unit's $CREDENTIALS_DIRECTORY, which the service reads.
func TestSystemdUserManagerLoadCredential(t *testing.T) {
	m := systemdtest.Start(t, systemdtest.Options{})
	dir := t.TempDir()
	secret, out := filepath.Join(dir, "secret"), filepath.Join(dir, "out")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	linkUnit(t, m, "cred.service", "[Service]\nType=oneshot\nLoadCredential=token:"+secret+
		"\nStandardOutput=file:"+out+"\nStandardError=file:"+out+
		"\nExecStart=/bin/sh -c 'cat \"$${CREDENTIALS_DIRECTORY}/token\"'\n")
	if _, err := m.Systemctl(context.Background(), "start", "cred.service"); err != nil {
		b, _ := os.ReadFile(out)
		t.Fatalf("%v\nservice output:\n%s", err, b)
	}
	if b, _ := os.ReadFile(out); string(b) != "s3cret\n" {
		t.Fatalf("service read %q from its credential, want the file's content", b)
	}
}
