package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unibus/unibus/internal/sshdtest"
	"github.com/unibus/unibus/internal/systemdtest"
	"github.com/unibus/unibus/internal/testbin"
)

// sshSpec is a cluster of n user-scope nodes under roots, each reached at
// target over SSH ("" for this machine's folders).
func sshSpec(n int, roots, target string) string {
	return sshSpecOn(n, roots, target, []int{20000}, "/usr/local/bin/membershipd", false)
}

// sshSpecOn is sshSpec with the nodes' ports (twelve, or a base), binary
// and monitor setting given.
func sshSpecOn(n int, roots, target string, ports []int, binary string, monitor bool) string {
	return sshSpecTo(n, roots, func(int) string { return target }, ports, binary, monitor)
}

// sshSpecTo is sshSpecOn with node i reached at target(i).
func sshSpecTo(n int, roots string, target func(i int) string, ports []int, binary string, monitor bool) string {
	var b strings.Builder
	b.WriteString("cluster \"t\" {\n  bus_auth = \"enforce\"\n")
	fmt.Fprintf(&b, "  monitor = %v\n", monitor)
	if n >= 3 {
		b.WriteString("  kv_replicas = 3\n")
	}
	b.WriteString("}\n")
	for i := 1; i <= n; i++ {
		ssh := ""
		if t := target(i); t != "" {
			ssh = fmt.Sprintf("    ssh     = %q\n", t)
		}
		fmt.Fprintf(&b, `node "n%d" {
  addresses = ["127.0.0.1"]
  bind      = "127.0.0.1"
  ports {
    http    = %d
    nats    = %d
    cluster = %d
    monitor = %d
  }
  target {
%s    scope   = "user"
    root    = %q
    manager = "systemd"
    binary  = %q
  }
}
`, i, port(ports, i, 0), port(ports, i, 1), port(ports, i, 2), port(ports, i, 3), ssh, filepath.Join(roots, fmt.Sprintf("n%d", i)), binary)
	}
	return b.String()
}

// port k (http, nats, cluster, monitor) of node i: from a list of twelve,
// or from a base.
func port(ports []int, i, k int) int {
	if len(ports) >= 12 {
		return ports[4*(i-1)+k]
	}
	return ports[0] + 10*i + k
}

type planRun struct {
	unibus, dir string
	env         []string
}

func newPlanRun(t testing.TB) *planRun {
	unibus, err := testbin.Unibus()
	if err != nil {
		t.Fatal(err)
	}
	r := &planRun{unibus: unibus, dir: t.TempDir()}
	id := filepath.Join(r.dir, "identity")
	if out, err := exec.Command(unibus, "keygen", "--handle", "op", "-o", id).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v: %s", err, out)
	}
	r.env = append(os.Environ(), "UNIBUS_IDENTITY="+id)
	return r
}

// plan writes spec into a folder of its own and plans it; it returns the
// output, the exit code and how long it took.
func (r *planRun) plan(t testing.TB, name, spec string, env ...string) (string, int, time.Duration) {
	dir := filepath.Join(r.dir, name)
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "cluster.hcl"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(r.unibus, "plan", "-detailed-exitcode", dir)
	// The caller's env comes last, so that it may give a runtime folder.
	cmd.Env = append(append(r.env, "XDG_RUNTIME_DIR=", "DBUS_SESSION_BUS_ADDRESS="), env...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code, d
}

// nodeChanges is a plan's per-node part, from its first node on, without
// the node headers (which say how the node is reached).
func nodeChanges(out string) string {
	var keep []string
	nodes := false
	for _, l := range strings.Split(out, "\n") {
		nodes = nodes || strings.HasPrefix(l, "Node ")
		if nodes && !strings.HasPrefix(l, "Node ") && !strings.HasPrefix(l, "unibus: ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// Plan over SSH against real OpenSSH sees each node as plan on this
// machine sees the same folders: the same changes, line for line; a file
// changed on the node shows; an unknown host key stops it with the
// fingerprint.
func TestPlanOverSSH(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	r := newPlanRun(t)
	roots := filepath.Join(r.dir, "roots")
	sshEnv := []string{"UNIBUS_SSH_KEY=" + s.UserKey, "UNIBUS_SSH_KNOWN_HOSTS=" + s.KnownHosts}
	target := "root@" + s.Addr

	local, code, dl := r.plan(t, "local", sshSpec(3, roots, ""))
	if code != 2 {
		t.Fatalf("local plan exit %d:\n%s", code, local)
	}
	remote, code, dr := r.plan(t, "ssh", sshSpec(3, roots, target), sshEnv...)
	if code != 2 {
		t.Fatalf("plan over ssh exit %d:\n%s", code, remote)
	}
	if nodeChanges(remote) != nodeChanges(local) {
		t.Fatalf("plan over ssh differs from the local plan of the same folders:\n--- ssh\n%s\n--- local\n%s", remote, local)
	}
	t.Logf("plan of 3 nodes: local %s, over ssh %s", dl.Round(time.Millisecond), dr.Round(time.Millisecond))
	// One login for the host, one session per node: each node's files,
	// certificates, identity and systemd are read in one round trip, and
	// what plan read early is not read again.
	if logins, sessions := strings.Count(s.Log(), "Accepted publickey"), strings.Count(s.Log(), "Starting session:"); logins != 1 || sessions != 3 {
		t.Fatalf("plan of 3 nodes on one host: %d logins and %d sessions, want 1 and 3:\n%s", logins, sessions, s.Log())
	}

	// What is on the node is what plan reads.
	unit := filepath.Join(roots, "n2", ".config", "systemd", "user", "membershipd-n2.service")
	os.MkdirAll(filepath.Dir(unit), 0o755)
	if err := os.WriteFile(unit, []byte("[Service]\nExecStart=/bin/true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	remote, _, _ = r.plan(t, "ssh", sshSpec(3, roots, target), sshEnv...)
	if !regexp.MustCompile(`(?m)^  ~ \.config/systemd/user/membershipd-n2\.service  0644`).MatchString(remote) {
		t.Fatalf("a unit written on n2 is not seen as changed over ssh:\n%s", remote)
	}

	// sudo = true: every command on the node goes through sudo -n; where
	// the node has no sudo, plan says so and what to do.
	withSudo := strings.ReplaceAll(sshSpec(3, roots, target), `    scope   = "user"`, "    sudo    = true\n    scope   = \"user\"")
	out, code, _ := r.plan(t, "sudo", withSudo, sshEnv...)
	if _, err := exec.LookPath("sudo"); err != nil {
		if code != 1 || !strings.Contains(out, "sudo is not installed there") {
			t.Fatalf("plan with sudo = true on a node without sudo: exit %d:\n%s", code, out)
		}
	} else if code != 2 {
		t.Fatalf("plan with sudo = true as root: exit %d:\n%s", code, out)
	}

	// A host known_hosts does not know: refused, with its fingerprint.
	empty := filepath.Join(r.dir, "empty_known_hosts")
	os.WriteFile(empty, nil, 0o600)
	out, code, _ = r.plan(t, "ssh", sshSpec(3, roots, target), "UNIBUS_SSH_KEY="+s.UserKey, "UNIBUS_SSH_KNOWN_HOSTS="+empty)
	if code != 1 || !strings.Contains(out, "SHA256:") || !strings.Contains(out, "n1") {
		t.Fatalf("plan with an unknown host key: exit %d:\n%s", code, out)
	}
}

// BenchmarkPlanOverSSH: plan of 1 and 3 nodes over SSH beside the same
// folders planned locally, interleaved (make bench-ssh). Over SSH as root
// (whose ~/.bashrc every session runs) and as sshdtest.PlainUser (a
// /bin/sh account), to tell the cost of unibus's sessions from the login
// shell's.
func BenchmarkPlanOverSSH(b *testing.B) {
	s := sshdtest.Start(b, sshdtest.Options{})
	s.EnsurePlainUser(b)
	r := newPlanRun(b)
	// The plain user must reach the (empty) node roots.
	roots := filepath.Join(systemdtest.Dir(b), "roots")
	sshEnv := []string{"UNIBUS_SSH_KEY=" + s.UserKey, "UNIBUS_SSH_KNOWN_HOSTS=" + s.KnownHosts}
	kinds := []string{"local", "root", "plain"}
	targets := map[string]string{"local": "", "root": "root@" + s.Addr, "plain": sshdtest.PlainUser + "@" + s.Addr}
	times := map[string][]time.Duration{}
	var ratios []float64 // plain3-warm / local3, round by round
	// plain3-warm: with UNIBUS_SSH_PERSIST, after a run that left its
	// connection to a mux.
	warmEnv := append(persistEnv(b), sshEnv...)
	if out, code, _ := r.plan(b, "plain3-warm", sshSpec(3, roots, targets["plain"]), warmEnv...); code != 2 {
		b.Fatalf("plan plain3-warm: exit %d\n%s", code, out)
	}
	waitMuxes(b, warmEnv, 1)
	b.ResetTimer()
	for range b.N {
		for _, n := range []int{1, 3} {
			for _, k := range kinds {
				key := fmt.Sprintf("%s%d", k, n)
				out, code, d := r.plan(b, key, sshSpec(n, roots, targets[k]), sshEnv...)
				if code != 2 {
					b.Fatalf("plan %s: exit %d\n%s\nsshd:\n%s", key, code, out, s.Log())
				}
				times[key] = append(times[key], d)
			}
		}
		out, code, d := r.plan(b, "plain3-warm", sshSpec(3, roots, targets["plain"]), warmEnv...)
		if code != 2 {
			b.Fatalf("plan plain3-warm: exit %d\n%s\nsshd:\n%s", code, out, s.Log())
		}
		times["plain3-warm"] = append(times["plain3-warm"], d)
		// The round's own ratio: the machine's load changes between rounds.
		local := times["local3"][len(times["local3"])-1]
		ratios = append(ratios, float64(d)/float64(local))
	}
	b.StopTimer()
	b.ReportMetric(medianDuration(times["plain3-warm"]).Seconds()*1000, "plain3-warm-ms")
	m := func(k string) time.Duration { return medianDuration(times[k]) }
	for _, n := range []int{1, 3} {
		for _, k := range kinds {
			key := fmt.Sprintf("%s%d", k, n)
			b.ReportMetric(m(key).Seconds()*1000, key+"-ms")
		}
	}
	b.Logf("plan, median of %d: local %s / %s (1 / 3 nodes); over ssh as root %s / %s (%.1fx local at 3; 3/1 nodes %.2fx); as %s (/bin/sh) %s / %s (%.1fx local at 3; 3/1 nodes %.2fx)",
		b.N, m("local1").Round(time.Millisecond), m("local3").Round(time.Millisecond),
		m("root1").Round(time.Millisecond), m("root3").Round(time.Millisecond), float64(m("root3"))/float64(m("local3")), float64(m("root3"))/float64(m("root1")),
		sshdtest.PlainUser, m("plain1").Round(time.Millisecond), m("plain3").Round(time.Millisecond), float64(m("plain3"))/float64(m("local3")), float64(m("plain3"))/float64(m("plain1")))
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "warm/local3")
	b.Logf("plan of 3 nodes as %s with UNIBUS_SSH_PERSIST, through the connection an earlier run left: %s (%.2fx local at 3; median of the rounds' ratios %.2fx, range %.2f-%.2fx)",
		sshdtest.PlainUser, m("plain3-warm").Round(time.Millisecond), float64(m("plain3-warm"))/float64(m("local3")),
		ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
}
