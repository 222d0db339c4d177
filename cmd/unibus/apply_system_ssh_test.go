package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unibus/unibus/internal/scripttest"
	"github.com/unibus/unibus/internal/sshdtest"
	"github.com/unibus/unibus/internal/systemdtest"
	"github.com/unibus/unibus/internal/testbin"
)

// TestApplySystemScopeOverSSH: the three-hosts shape as operators deploy
// it: system-scope nodes with root /, each on a host of its own, reached
// as a login that is not root and becomes root with sudo -n (target {
// sudo = true }). Every file goes to the host's /etc through sudo, and
// systemctl without --user drives the host's system manager (the
// harness's stand-in for PID 1, its /etc an overlay of this machine's
// and its sudo rule only there). The cluster forms over route TLS with
// membershipd running as its DynamicUser=, unibus status reads every
// node through the SSH tunnel, a second apply changes nothing, and down
// stops all three.
func TestApplySystemScopeOverSSH(t *testing.T) {
	systemdtest.Need(t)
	sshdtest.Need(t)
	sshdtest.EnsurePlainAccount(t) // before any /etc overlay
	dir := systemdtest.Dir(t)
	work := t.TempDir()
	hosts, khFile := startSSHHosts(t, work, func(int) (systemdtest.Options, string) {
		return systemdtest.Options{System: true, Sudoers: sshdtest.PlainUser + " ALL=(root) NOPASSWD: ALL"}, ""
	})
	bin, err := testbin.MembershipdIn(dir)
	if err != nil {
		t.Fatal(err)
	}
	unibus, err := testbin.Unibus()
	if err != nil {
		t.Fatal(err)
	}
	var ports []int
	for range 12 {
		ports = append(ports, scripttest.Port(t))
	}
	target := func(i int) string { return sshdtest.PlainUser + "@" + hosts[i-1].sshd.Addr }
	spec := sshSpecTo(3, dir, target, ports, bin, false)
	spec = regexp.MustCompile(`root    = ".*"`).ReplaceAllString(spec, `root    = "/"`)
	spec = strings.ReplaceAll(spec, `    scope   = "user"`, "    scope   = \"system\"\n    sudo    = true")
	specDir := filepath.Join(work, "spec")
	os.MkdirAll(specDir, 0o755)
	if err := os.WriteFile(filepath.Join(specDir, "cluster.hcl"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "UNIBUS_IDENTITY="+filepath.Join(work, "identity"),
		"UNIBUS_SSH_KEY="+hosts[0].sshd.UserKey, "UNIBUS_SSH_KNOWN_HOSTS="+khFile,
		"XDG_RUNTIME_DIR=", "DBUS_SESSION_BUS_ADDRESS=")
	run := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(unibus, append(args, specDir)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	const unit = "membershipd-cluster.service"

	out, code := run("apply", "-auto-approve")
	if code != 0 {
		t.Fatalf("apply of system-scope nodes over ssh with sudo: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		`(?m)^Node n1 \(` + regexp.QuoteMeta(target(1)) + `:/; systemd 2\d\d.*, service inactive\):$`,
		`(?m)^  \+ etc/systemd/system/` + unit + `  0644`,
		`(?m)^unibus: gate: .*converged 3/3 samples$`,
		`(?m)^Apply complete: \d+ file\(s\) written, 0 removed, 3 started, 0 restarted\.$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Fatalf("apply of system-scope nodes over ssh: no %s in:\n%s", want, out)
		}
	}
	for i, hs := range hosts {
		// The files are root's, in the host's /etc, the config folder
		// closed to everyone else.
		cfg := filepath.Join(hs.root, "etc", "unibus")
		if fi, err := os.Stat(cfg); err != nil || fi.Mode().Perm() != 0o700 || fileOwner(t, cfg) != 0 {
			t.Fatalf("n%d: /etc/unibus: %v %v, want root's, 0700", i+1, fi, err)
		}
		if owner := fileOwner(t, filepath.Join(hs.root, "etc", "unibus", "age-identity")); owner != 0 {
			t.Fatalf("n%d: /etc/unibus/age-identity belongs to uid %d, want root", i+1, owner)
		}
		// membershipd runs as its dynamic user, not root and not the login.
		pid := hs.h.Show(t, unit, "MainPID")
		uid := procUID(t, pid)
		if uid == 0 || uid == plainUID(t) {
			t.Fatalf("n%d: membershipd (pid %s) runs as uid %d, want its DynamicUser=", i+1, pid, uid)
		}
	}

	// status reaches every node's control plane through the SSH tunnel.
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, code = run("status")
		if code == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	healthy := regexp.MustCompile(`(?m)^n[123] +OK +yes +\S+ \(systemd \S+\) +active/running +0 +enforce\+acl\+tls +converged, streams 7/7, followers 14/14, meta 3/3 `)
	if code != 0 || !strings.Contains(out, "UNIBUS OK - cluster t: 0 of 3 node(s) flagged") || len(healthy.FindAllString(out, -1)) != 3 {
		t.Fatalf("status of the system-scope cluster over ssh: exit %d\n%s", code, out)
	}

	if out, code := run("apply", "-auto-approve"); code != 0 || !strings.Contains(out, "No changes.") {
		t.Fatalf("second apply over ssh with sudo: exit %d\n%s", code, out)
	}
	if out, code := run("down"); code != 0 || !strings.Contains(out, "Down complete: 3 node(s) stopped.") {
		t.Fatalf("down over ssh with sudo: exit %d\n%s", code, out)
	}
	for i, hs := range hosts {
		if st, _ := hs.h.Systemctl(context.Background(), "show", "-p", "ActiveState", unit); strings.TrimSpace(st) == "ActiveState=active" {
			t.Fatalf("n%d still runs after down", i+1)
		}
	}
}

func fileOwner(t *testing.T, p string) int {
	t.Helper()
	out, err := exec.Command("stat", "-c", "%u", p).Output()
	if err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// procUID is the real uid of process pid.
func procUID(t *testing.T, pid string) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%s/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no Uid in /proc/%s/status", pid)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func plainUID(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("id", "-u", sshdtest.PlainUser).Output()
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}
