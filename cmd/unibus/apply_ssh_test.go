package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/unibus/unibus/internal/sshdtest"
	"github.com/unibus/unibus/internal/systemdtest"
	"github.com/unibus/unibus/internal/testbin"
)

// TestApplyOverSSH: unibus apply of a three-node cluster whose nodes are
// reached only over SSH (a real sshd serving the namespace of a real
// systemd user manager, the "host"): files written through the SSH
// transport, units driven with systemctl over the session, the gate and
// the leader drain reading each node's control plane through the SSH
// tunnel to its loopback. The cluster forms over route TLS, a second apply
// does nothing, a drop-in rolls through with the gate, and down stops it.
func TestApplyOverSSH(t *testing.T) {
	systemdtest.Need(t)
	sshdtest.Need(t)
	dir := systemdtest.Dir(t)
	roots := filepath.Join(dir, "roots")
	var configDirs []string
	for _, n := range []string{"n1", "n2", "n3"} {
		configDirs = append(configDirs, filepath.Join(roots, n, ".config"))
	}
	h := systemdtest.Start(t, systemdtest.Options{ConfigDirs: configDirs})
	s := sshdtest.Start(t, sshdtest.Options{Prefix: h.Nsenter()})
	built, err := testbin.Membershipd()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin", "membershipd")
	data, _ := os.ReadFile(built)
	os.MkdirAll(filepath.Dir(bin), 0o755)
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	unibus, err := testbin.Unibus()
	if err != nil {
		t.Fatal(err)
	}
	var ports []int
	for range 12 {
		ports = append(ports, freePort(t))
	}
	work := t.TempDir()
	specDir := filepath.Join(work, "spec")
	os.MkdirAll(specDir, 0o755)
	env := append(os.Environ(), "UNIBUS_IDENTITY="+filepath.Join(work, "identity"),
		"UNIBUS_SSH_KEY="+s.UserKey, "UNIBUS_SSH_KNOWN_HOSTS="+s.KnownHosts,
		"XDG_RUNTIME_DIR=", "DBUS_SESSION_BUS_ADDRESS=")
	apply := func(monitor bool, args ...string) string {
		t.Helper()
		spec := sshSpecOn(3, roots, "root@"+s.Addr, ports, bin, monitor)
		if err := os.WriteFile(filepath.Join(specDir, "cluster.hcl"), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(unibus, append(args, specDir)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("unibus %s: %v\n%s\nsshd:\n%s", strings.Join(args, " "), err, out, s.Log())
		}
		return string(out)
	}

	out := apply(false, "apply", "-auto-approve")
	for _, want := range []string{
		`(?m)^Node n1 \(.*/roots/n1; systemd 2\d\d.*, service inactive\):$`,
		`(?m)^unibus: made the age identity of n1, n2, n3 on the node`,
		`(?m)^unibus: gate: .*converged 3/3 samples$`,
		`(?m)^Apply complete: 30 file\(s\) written, 0 removed, 3 started, 0 restarted\.$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Fatalf("first apply over ssh: no %s in:\n%s", want, out)
		}
	}
	st, err := h.Systemctl(t.Context(), "show", "-p", "ActiveState", "membershipd-n1.service", "membershipd-n2.service", "membershipd-n3.service")
	if err != nil || strings.Count(st, "ActiveState=active") != 3 {
		t.Fatalf("after apply over ssh, the units: %s %v", st, err)
	}
	if id, err := os.Stat(filepath.Join(roots, "n2", ".config", "unibus", "age-identity")); err != nil || id.Mode().Perm() != 0o600 {
		t.Fatalf("n2's age identity on the node: %v %v", id, err)
	}

	if out := apply(false, "apply", "-auto-approve"); !strings.Contains(out, "No changes.") {
		t.Fatalf("second apply over ssh changed something:\n%s", out)
	}

	out = apply(true, "apply", "-auto-approve")
	order := regexp.MustCompile(`(?m)^unibus: (n\d): (restart membershipd|converged$)`).FindAllStringSubmatch(out, -1)
	if len(order) != 6 || !regexp.MustCompile(`(?m)leadership\(s\) moved off .*meta leader: true`).MatchString(out) ||
		!strings.Contains(out, "Apply complete: 3 file(s) written, 0 removed, 0 started, 3 restarted.") {
		t.Fatalf("rolling a drop-in over ssh:\n%s", out)
	}
	for i := 0; i < 6; i += 2 {
		if order[i][1] != order[i+1][1] || !strings.HasPrefix(order[i][2], "restart") || order[i+1][2] != "converged" {
			t.Fatalf("rollout over ssh out of order at %d: %v\n%s", i, order, out)
		}
	}

	if out := apply(true, "down"); !strings.Contains(out, "Down complete: 3 node(s) stopped.") {
		t.Fatalf("down over ssh:\n%s", out)
	}
	st, _ = h.Systemctl(t.Context(), "show", "-p", "ActiveState", "membershipd-n1.service", "membershipd-n2.service", "membershipd-n3.service")
	if strings.Count(st, "ActiveState=inactive") != 3 {
		t.Fatalf("after down over ssh: %s", st)
	}
}
