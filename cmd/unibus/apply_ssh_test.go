package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/scripttest"
	"github.com/unibus/unibus/internal/sshdtest"
	"github.com/unibus/unibus/internal/systemdtest"
	"github.com/unibus/unibus/internal/testbin"
)

// sshHost is one "host" of TestApplyOverSSH: a real systemd user manager
// in a mount namespace of its own, and a real sshd serving that namespace.
type sshHost struct {
	h    *systemdtest.Manager
	sshd *sshdtest.Server
	root string
}

// TestApplyOverSSH: unibus apply of a three-hosts-shaped cluster, each
// node on a host of its own reached only over SSH (its own sshd, known
// host key and systemd user manager): files written through the SSH
// transport, units driven with systemctl over the session, the gate and
// the leader drain reading each node's control plane through the SSH
// tunnel to its loopback. The cluster forms over route TLS, a second apply
// does nothing, a drop-in rolls through with the gate while blobs and
// members are written through every node (none lost), and down stops it.
func TestApplyOverSSH(t *testing.T) {
	systemdtest.Need(t)
	sshdtest.Need(t)
	dir := systemdtest.Dir(t)
	work := t.TempDir()
	hosts, khFile := startSSHHosts(t, work, func(i int) (systemdtest.Options, string) {
		root := filepath.Join(dir, fmt.Sprintf("host%d", i))
		return systemdtest.Options{ConfigDirs: []string{filepath.Join(root, ".config")}}, root
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
	specDir := filepath.Join(work, "spec")
	os.MkdirAll(specDir, 0o755)
	env := append(os.Environ(), "UNIBUS_IDENTITY="+filepath.Join(work, "identity"),
		"UNIBUS_SSH_KEY="+hosts[0].sshd.UserKey, "UNIBUS_SSH_KNOWN_HOSTS="+khFile,
		"XDG_RUNTIME_DIR=", "DBUS_SESSION_BUS_ADDRESS=")
	target := func(i int) string { return "root@" + hosts[i-1].sshd.Addr }
	writeSpec := func(monitor bool) {
		// Each node's root is its host's folder, which its manager loads.
		spec := sshSpecTo(3, dir, target, ports, bin, monitor)
		spec = regexp.MustCompile(`root    = ".*/n(\d)"`).ReplaceAllString(spec, `root    = "`+dir+`/host$1"`)
		if err := os.WriteFile(filepath.Join(specDir, "cluster.hcl"), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	apply := func(monitor bool, args ...string) string {
		t.Helper()
		writeSpec(monitor)
		cmd := exec.Command(unibus, append(args, specDir)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("unibus %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	active := func() int {
		n := 0
		for _, hs := range hosts {
			st, _ := hs.h.Systemctl(context.Background(), "show", "-p", "ActiveState", "membershipd-cluster.service")
			if strings.TrimSpace(st) == "ActiveState=active" {
				n++
			}
		}
		return n
	}

	// An apply SIGKILLed while it uploads leaves only whole files on the
	// hosts: each one there after the kill is byte for byte what the
	// converged node has.
	writeSpec(false)
	crash := exec.Command(unibus, "apply", "-auto-approve", specDir)
	crash.Env = env
	if err := crash.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(nodeFiles(t, hosts)) < 8 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	crash.Process.Kill()
	crash.Wait()
	afterKill := nodeFiles(t, hosts)
	if len(afterKill) < 8 {
		t.Fatalf("the apply to kill wrote %d files in 60s", len(afterKill))
	}

	out := apply(false, "apply", "-auto-approve")
	for _, want := range []string{
		`(?m)^Node n1 \(.*/host1; systemd 2\d\d.*, service inactive\):$`,
		`(?m)^unibus: gate: .*converged 3/3 samples$`,
		`(?m)^Apply complete: \d+ file\(s\) written, 0 removed, 3 started, 0 restarted\.$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Fatalf("first apply over ssh: no %s in:\n%s", want, out)
		}
	}
	if n := active(); n != 3 {
		t.Fatalf("after apply over ssh, %d of 3 hosts run membershipd-cluster.service", n)
	}
	final := nodeFiles(t, hosts)
	for p, sum := range afterKill {
		if final[p] != sum {
			t.Errorf("%s after the kill is not what the converged node has: a torn or stale file", p)
		}
	}
	t.Logf("killed apply left %d whole files; the next apply converged to %d", len(afterKill), len(final))
	if id, err := os.Stat(filepath.Join(hosts[1].root, ".config", "unibus", "age-identity")); err != nil || id.Mode().Perm() != 0o600 {
		t.Fatalf("n2's age identity on its host: %v %v", id, err)
	}
	if out := apply(false, "apply", "-auto-approve"); !strings.Contains(out, "No changes.") {
		t.Fatalf("second apply over ssh changed something:\n%s", out)
	}

	// A drop-in rolls through the three hosts under load.
	op, err := client.LoadIdentity(filepath.Join(work, "identity"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := client.WithServerCA(filepath.Join(specDir, ".unibus", "pki", "client-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	var ops []*client.Client
	for _, i := range []int{0, 4, 8} {
		ops = append(ops, client.New(fmt.Sprintf("https://127.0.0.1:%d", ports[i]), op, ca))
	}
	room, err := ops[0].CreateRoom(context.Background(), "load")
	if err != nil {
		t.Fatal(err)
	}
	load := startLoad(ops, room.ID)
	time.Sleep(500 * time.Millisecond)
	t0 := time.Now()
	out = apply(true, "apply", "-auto-approve")
	took := time.Since(t0)
	time.Sleep(time.Second)
	load.stop()
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
	load.check(t, ops, room.ID)
	t.Logf("rollout over ssh: %s for 3 hosts; longest stall: publish %s, write %s; %d blobs, %d members acknowledged, all on every node",
		took.Round(time.Millisecond), load.blobs.stall().Round(time.Millisecond), load.members.stall().Round(time.Millisecond),
		len(load.blobs.acked), len(load.members.acked))

	if out := apply(true, "down"); !strings.Contains(out, "Down complete: 3 node(s) stopped.") {
		t.Fatalf("down over ssh:\n%s", out)
	}
	if n := active(); n != 0 {
		t.Fatalf("after down over ssh, %d hosts still run membershipd-cluster.service", n)
	}
}

// startSSHHosts starts three "hosts": each a real systemd manager in a
// mount namespace of its own (opts(i) shapes host i, and names its root
// as the test sees it) and a real sshd serving that namespace with its
// own host key. Every host takes the first host's user key (one
// operator); the known_hosts file that knows all three is in work.
func startSSHHosts(t *testing.T, work string, opts func(i int) (systemdtest.Options, string)) ([]sshHost, string) {
	t.Helper()
	var hosts []sshHost
	var knownHosts []byte
	for i := 1; i <= 3; i++ {
		o, root := opts(i)
		h := systemdtest.Start(t, o)
		s := sshdtest.Start(t, sshdtest.Options{Prefix: h.Nsenter()})
		kh, err := os.ReadFile(s.KnownHosts)
		if err != nil {
			t.Fatal(err)
		}
		knownHosts = append(knownHosts, kh...)
		if root == "" {
			root = h.HostPath("/")
		}
		hosts = append(hosts, sshHost{h: h, sshd: s, root: root})
	}
	for _, hs := range hosts {
		hs.sshd.EnsurePlainUser(t) // (a login that is not root may be used)
		if hs.sshd != hosts[0].sshd {
			hs.sshd.Authorize(t, hosts[0].sshd.UserKey+".pub")
		}
	}
	khFile := filepath.Join(work, "known_hosts")
	if err := os.WriteFile(khFile, knownHosts, 0o600); err != nil {
		t.Fatal(err)
	}
	return hosts, khFile
}

// nodeFiles is the SHA-256 of every file apply installed on the hosts (its
// temporary files left out), by path.
func nodeFiles(t *testing.T, hosts []sshHost) map[string]string {
	out := map[string]string{}
	for _, hs := range hosts {
		filepath.WalkDir(filepath.Join(hs.root, ".config"), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || strings.Contains(d.Name(), ".tmp") {
				return nil
			}
			if data, err := os.ReadFile(p); err == nil {
				sum := sha256.Sum256(data)
				out[p] = hex.EncodeToString(sum[:])
			}
			return nil
		})
	}
	return out
}
