package units

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// membershipdUnit is a unit like the rendered one: Type=notify, the state
// folder through %S and StateDirectory=, a credential through %d, the
// sandboxing directives the exec manager does not enforce.
func membershipdUnit(t testing.TB, bin string, secret string) (unit string, http int) {
	http = freePort(t)
	return fmt.Sprintf(`[Unit]
Description=membershipd under exec
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStartPre=/bin/sh -c 'echo "pre: state=$STATE_DIRECTORY creds=$CREDENTIALS_DIRECTORY"; test -d "$STATE_DIRECTORY"; test -r "$CREDENTIALS_DIRECTORY/test.key"'
ExecStart=%s --node-name n1 --state-dir %%S/membershipd --http-addr 127.0.0.1:%d --nats-addr 127.0.0.1:%d --monitor-port %d --bus-auth warn
Restart=on-failure
RestartSec=100ms
TimeoutStartSec=60s
TimeoutStopSec=20s
StateDirectory=membershipd
StateDirectoryMode=0700
LoadCredential=test.key:%s
UMask=0077
ProtectSystem=strict
PrivateTmp=yes
SystemCallFilter=@system-service
IPAddressDeny=any
`, bin, http, freePort(t), freePort(t), secret), http
}

func readyz(port int) int {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The real membershipd under exec: READY=1 reached (Start returns and
// /readyz answers), the credential is a copy in a private 0700 folder,
// the state folder exists, what is not enforced is listed; SIGKILL of the
// main process brings a restart (NRestarts, a new MainPID); Stop ends it
// and removes the credentials.
func TestExecMembershipd(t *testing.T) {
	bin := membershipd(t)
	root, m := node(t)
	secret := filepath.Join(root, "test.key")
	if err := os.WriteFile(secret, []byte("not really a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body, port := membershipdUnit(t, bin, secret)
	service(t, root, "membershipd.service", body, nil)
	ctx := context.Background()
	if err := m.Start(ctx, "membershipd.service"); err != nil {
		t.Fatal(err)
	}
	if code := readyz(port); code != 200 {
		t.Fatalf("after Start returned, /readyz = %d, want 200 (Start waits for READY=1)", code)
	}
	st, err := m.Status(ctx, "membershipd.service")
	if err != nil {
		t.Fatal(err)
	}
	if st.ActiveState != StateActive || st.SubState != "running" || st.MainPID == 0 || len(st.InvocationID) != 32 {
		t.Fatalf("status %+v, want active/running with a main PID", st)
	}
	for _, d := range []string{"ProtectSystem=", "PrivateTmp=", "SystemCallFilter=", "IPAddressDeny=", "Wants="} {
		if !strings.Contains(strings.Join(st.NotEnforced, " "), d) {
			t.Errorf("NotEnforced %v lacks %s", st.NotEnforced, d)
		}
	}
	log, _ := os.ReadFile(filepath.Join(ManagerDir(root, User), "membershipd.service", "log"))
	if strings.Count(string(log), "not enforced without systemd") != 1 {
		t.Errorf("the log should say once what is not enforced:\n%s", log)
	}
	creds := filepath.Join(ManagerDir(root, User), "membershipd.service", "credentials")
	if !strings.Contains(string(log), "creds="+creds) || !strings.Contains(string(log), "state="+filepath.Join(root, ".local/state/membershipd")) {
		t.Errorf("ExecStartPre saw another $CREDENTIALS_DIRECTORY or $STATE_DIRECTORY:\n%s", log)
	}
	fi, err := os.Stat(creds)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("credentials folder %s: %v, mode %v; want 0700", creds, err, fi.Mode().Perm())
	}
	if data, err := os.ReadFile(filepath.Join(creds, "test.key")); err != nil || string(data) != "not really a key\n" {
		t.Fatalf("credential copy: %q, %v", data, err)
	}
	if fi, _ := os.Stat(filepath.Join(creds, "test.key")); fi.Mode().Perm() != 0o400 {
		t.Errorf("credential mode %v, want 0400", fi.Mode().Perm())
	}
	if fi, err := os.Stat(filepath.Join(root, ".local", "state", "membershipd")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state folder: %v (want it made with StateDirectoryMode=0700)", err)
	}
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", st.MainPID))
	for _, want := range []string{"CREDENTIALS_DIRECTORY=" + creds, "NOTIFY_SOCKET=", "INVOCATION_ID=" + st.InvocationID} {
		if !strings.Contains(string(env), want) {
			t.Errorf("service environment lacks %s", want)
		}
	}

	// A crash: SIGKILL of the main process. Restart=on-failure brings it back.
	first := st.MainPID
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, m, "membershipd.service", 60*time.Second, func(s UnitStatus) bool {
		return s.ActiveState == StateActive && s.NRestarts == 1 && s.MainPID != 0 && s.MainPID != first
	})
	if readyz(port) != 200 {
		t.Fatal("the restarted daemon does not answer /readyz")
	}

	if err := m.Stop(ctx, "membershipd.service"); err != nil {
		t.Fatal(err)
	}
	st, _ = m.Status(ctx, "membershipd.service")
	// membershipd catches SIGTERM and exits 0 after a clean shutdown.
	if st.ActiveState != StateInactive || st.Result != "success" || st.ExecMainCode != "exited" || st.ExecMainStatus != 0 {
		t.Fatalf("after Stop: %+v, want inactive, success, main exited 0", st)
	}
	if _, err := os.Stat(creds); !os.IsNotExist(err) {
		t.Errorf("credentials folder left after Stop: %v", err)
	}
	if readyz(port) != 0 {
		t.Error("membershipd still answers after Stop")
	}
}

// Stop sends KillSignal; a service that ignores it gets SIGKILL, with its
// whole process group, after TimeoutStopSec.
func TestExecStopEscalates(t *testing.T) {
	root, m := node(t)
	service(t, root, "polite.service", "[Service]\nKillSignal=SIGUSR1\nExecStart=/bin/sh -c 'trap \"echo got-usr1; exit 0\" USR1; while :; do sleep 0.05; done'\n", nil)
	service(t, root, "stubborn.service", "[Service]\nTimeoutStopSec=1s\nExecStart=/bin/sh -c 'trap \"\" TERM; sleep 300 & while :; do sleep 0.05; done'\n", nil)
	ctx := context.Background()
	for _, u := range []string{"polite.service", "stubborn.service"} {
		if err := m.Start(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // let sh install its traps
	t0 := time.Now()
	if err := m.Stop(ctx, "polite.service"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("a service that exits on KillSignal took %s to stop", d)
	}
	log, _ := os.ReadFile(filepath.Join(ManagerDir(root, User), "polite.service", "log"))
	if !strings.Contains(string(log), "got-usr1") {
		t.Errorf("KillSignal=SIGUSR1 not delivered:\n%s", log)
	}

	st, _ := m.Status(ctx, "stubborn.service")
	group := st.MainPID
	t0 = time.Now()
	if err := m.Stop(ctx, "stubborn.service"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < time.Second || d > 8*time.Second {
		t.Errorf("stop of a service ignoring SIGTERM took %s, want TimeoutStopSec=1s then SIGKILL", d)
	}
	if err := syscall.Kill(-group, 0); err != syscall.ESRCH {
		t.Errorf("process group %d still has members after Stop (the background sleep): %v", group, err)
	}
	st, _ = m.Status(ctx, "stubborn.service")
	if st.Result != "timeout" || st.ActiveState != StateFailed {
		t.Errorf("status %+v, want failed with result timeout", st)
	}
}

// A failed start reports the result, the exit status and the last lines
// of the unit's log; so does a start that never sends READY=1.
func TestExecStartFailure(t *testing.T) {
	root, m := node(t)
	service(t, root, "boom.service", "[Service]\nType=notify\nExecStart=/bin/sh -c 'echo boom-line-1 >&2; echo boom-line-2; exit 3'\n", nil)
	service(t, root, "silent.service", "[Service]\nType=notify\nTimeoutStartSec=500ms\nExecStart=/bin/sleep 60\n", nil)
	ctx := context.Background()
	err := m.Start(ctx, "boom.service")
	if err == nil || !strings.Contains(err.Error(), "result: exit-code") || !strings.Contains(err.Error(), "status=3") ||
		!strings.Contains(err.Error(), "boom-line-1") || !strings.Contains(err.Error(), "boom-line-2") {
		t.Fatalf("Start = %v, want the result, the status and the log lines", err)
	}
	st, _ := m.Status(ctx, "boom.service")
	if st.ActiveState != StateFailed || st.ExecMainStatus != 3 {
		t.Errorf("status %+v, want failed with status 3", st)
	}
	t0 := time.Now()
	err = m.Start(ctx, "silent.service")
	if err == nil || !strings.Contains(err.Error(), "result: timeout") {
		t.Fatalf("Start = %v, want result timeout", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("TimeoutStartSec=500ms took %s", d)
	}
}

// The notify socket stays open after READY=1: a later STATUS= arrives.
func TestExecNotifyAfterReady(t *testing.T) {
	root, m := node(t)
	service(t, root, "talk.service", fmt.Sprintf("[Service]\nType=notify\nExecStart=%s notify-helper\n", os.Args[0]), nil)
	if err := m.Start(context.Background(), "talk.service"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, m, "talk.service", 10*time.Second, func(s UnitStatus) bool {
		return s.StatusText == "still talking after READY"
	})
}

// The supervisor outlives the process that started it.
func TestExecOutlivesStarter(t *testing.T) {
	root, m := node(t)
	service(t, root, "long.service", "[Service]\nExecStart=/bin/sleep 300\n", nil)
	starter := exec.Command(os.Args[0], "exec-start", root, "long.service")
	if out, err := starter.CombinedOutput(); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	// The starter has exited; the unit runs on.
	time.Sleep(200 * time.Millisecond)
	st, err := m.Status(context.Background(), "long.service")
	if err != nil || st.ActiveState != StateActive || syscall.Kill(st.MainPID, 0) != nil {
		t.Fatalf("after the starter exited: %+v, %v", st, err)
	}
	if err := m.Stop(context.Background(), "long.service"); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(st.MainPID, 0) == nil {
		t.Error("main process alive after Stop")
	}
}

// Reload makes the next start read the files again; before it, a start
// uses what was loaded, and Status says the files changed.
func TestExecReload(t *testing.T) {
	root, m := node(t)
	ctx := context.Background()
	service(t, root, "r.service", "[Service]\nExecStart=/bin/sleep 300\nEnvironment=V=old\n", nil)
	if err := m.Start(ctx, "r.service"); err != nil {
		t.Fatal(err)
	}
	service(t, root, "r.service", "[Service]\nExecStart=/bin/sleep 300\nEnvironment=V=new\n", nil)
	if st, _ := m.Status(ctx, "r.service"); !st.NeedDaemonReload {
		t.Error("NeedDaemonReload is false after the file changed")
	}
	envOf := func() string {
		st, _ := m.Status(ctx, "r.service")
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", st.MainPID))
		return string(b)
	}
	if err := m.Restart(ctx, "r.service"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(envOf(), "V=old") {
		t.Error("a restart without Reload read the changed file")
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Restart(ctx, "r.service"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(envOf(), "V=new") {
		t.Error("after Reload, a restart still used the old file")
	}
	if st, _ := m.Status(ctx, "r.service"); st.NeedDaemonReload {
		t.Error("NeedDaemonReload after Reload")
	}
}
