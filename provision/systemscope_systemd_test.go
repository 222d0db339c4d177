package provision

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/unibus/unibus/internal/scripttest"
	"github.com/unibus/unibus/internal/systemdtest"
	"github.com/unibus/unibus/internal/testbin"
	"github.com/unibus/unibus/units"
)

// TestSystemScopeUnderSystemd: the system-scope units, installed by apply
// with the modes it gives them, run under a real systemd as the
// DynamicUser= they ask for, with ProtectHome=yes and all their
// sandboxing, and form the TLS-routed cluster: so every file membershipd
// reads is readable by that user inside that sandbox. (A user manager of
// root runs them here: PID 1 would load them from /etc/systemd/system;
// the harness makes its notify socket world-writable, as PID 1's is.)
func TestSystemScopeUnderSystemd(t *testing.T) {
	systemdtest.Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := systemdtest.Dir(t)
	bin, err := testbin.MembershipdIn(dir)
	if err != nil {
		t.Fatal(err)
	}
	op, _ := age.GenerateX25519Identity()
	var ports []string
	for range 12 {
		ports = append(ports, strconv.Itoa(scripttest.Port(t)))
	}
	specDir := copySpec(t, "testdata/systemscope")
	vars := map[string]string{"ports": strings.Join(ports, ","), "roots": filepath.Join(dir, "roots"), "binary": bin, "operator": op.Recipient().String()}
	spec := mustLoad(t, specDir, vars)

	// What apply does for the files: node identities made on the node,
	// then every file written with its mode.
	if _, err := PrepareNodes(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	p, err := MakePlan(ctx, spec, PlanOptions{SpecPath: specDir, Vars: vars})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(ctx, p, ApplyOptions{Identities: []age.Identity{op}}); err != nil {
		t.Fatal(err)
	}

	h := systemdtest.Start(t, systemdtest.Options{})
	m := units.NewSystemdManager(units.User)
	m.Address = "unix:path=" + h.HostPath(h.RuntimeDir()+"/systemd/private")
	m.JournalDirectory = h.JournalDir()
	defer m.Close()
	if err := os.MkdirAll(h.UnitDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range spec.Nodes {
		n := &spec.Nodes[i]
		src := filepath.Join(n.Target.Root, filepath.FromSlash(units.System.UnitDir()))
		if out, err := exec.Command("cp", "-r", src+"/.", h.UnitDir()).CombinedOutput(); err != nil {
			t.Fatalf("installing %s's units: %v: %s", n.Name, err, out)
		}
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range spec.Nodes {
		unit := spec.UnitNameFor(&spec.Nodes[i])
		if err := m.Start(ctx, unit); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Stop(context.Background(), unit) })
	}
	client := tlsClient(t, filepath.Join(specDir, ".unibus", "pki", "client-ca.crt"))
	for _, port := range []string{ports[0], ports[4], ports[8]} {
		waitReadyz(t, client, "https://127.0.0.1:"+port+"/readyz")
	}
	for i := range spec.Nodes {
		unit := spec.UnitNameFor(&spec.Nodes[i])
		st, err := m.Status(ctx, unit)
		if err != nil {
			t.Fatal(err)
		}
		status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(st.MainPID), "status"))
		if err != nil {
			t.Fatal(err)
		}
		uid := regexp.MustCompile(`(?m)^Uid:\s+(\d+)`).FindSubmatch(status)
		if uid == nil || string(uid[1]) == "0" {
			t.Fatalf("%s runs as uid %s, want its dynamic user", unit, uid)
		}
		out, err := h.Command(ctx, "systemd-analyze", "--user", "security", "--no-pager", unit).CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze security %s: %v: %s", unit, err, out)
		}
		score := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
		if score == nil {
			t.Fatalf("no exposure level for %s:\n%s", unit, out)
		}
		t.Logf("%s runs as uid %s; exposure as systemd loaded it: %s", unit, uid[1], score[1])
		if s, _ := strconv.ParseFloat(string(score[1]), 64); s > 1.0 {
			t.Errorf("%s exposure %s, want <= 1.0:\n%s", unit, score[1], out)
		}
	}
}

func tlsClient(t *testing.T, caFile string) *http.Client {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func waitReadyz(t *testing.T, c *http.Client, url string) {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 90s", url)
}
