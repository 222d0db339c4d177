package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unibus/unibus/internal/scripttest"
	"github.com/unibus/unibus/internal/systemdtest"
	"github.com/unibus/unibus/internal/testbin"
)

// BenchmarkApplyManagers: unibus apply of the three-node local cluster,
// from nothing to three ready nodes, under a real systemd user manager
// beside the same under the exec manager, interleaved round by round
// (make bench-systemd). Run with -benchtime 1x: each iteration is one
// round of both.
func BenchmarkApplyManagers(b *testing.B) {
	systemdtest.Need(b)
	unibus, err := testbin.Unibus()
	if err != nil {
		b.Fatal(err)
	}
	dir := systemdtest.Dir(b)
	bin, err := testbin.MembershipdIn(dir)
	if err != nil {
		b.Fatal(err)
	}
	roots := map[string]string{"exec": filepath.Join(dir, "exec-roots"), "systemd": filepath.Join(dir, "roots")}
	var configDirs []string
	for _, n := range []string{"n1", "n2", "n3"} {
		configDirs = append(configDirs, filepath.Join(roots["systemd"], n, ".config"))
	}
	h := systemdtest.Start(b, systemdtest.Options{ConfigDirs: configDirs})
	spec, err := os.ReadFile("testdata/bench/cluster.hcl")
	if err != nil {
		b.Fatal(err)
	}
	times := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		order := []string{"exec", "systemd"}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, mgr := range order {
			env := os.Environ()
			if mgr == "systemd" {
				env = append(env, h.Env()...)
			}
			d, err := applyOnce(b, unibus, bin, roots[mgr], mgr, spec, env)
			if err != nil {
				b.Fatalf("%s: %v", mgr, err)
			}
			times[mgr] = append(times[mgr], d)
			if mgr == "systemd" {
				out, _ := h.Systemctl(context.Background(), "show", "-p", "NRestarts", "membershipd-n1.service", "membershipd-n2.service", "membershipd-n3.service")
				b.Logf("systemd restarts: %s", strings.Join(strings.Fields(out), " "))
			}
			os.RemoveAll(roots[mgr])
			if mgr == "systemd" {
				for _, n := range []string{"n1", "n2", "n3"} {
					os.RemoveAll(filepath.Join(h.StateDir(), "membershipd-"+n))
				}
			}
			b.Logf("round %d %s: %s", i+1, mgr, d.Round(time.Millisecond))
		}
	}
	b.StopTimer()
	sd, ex := medianDuration(times["systemd"]), medianDuration(times["exec"])
	b.ReportMetric(sd.Seconds(), "systemd-s")
	b.ReportMetric(ex.Seconds(), "exec-s")
	b.ReportMetric(float64(sd)/float64(ex), "systemd/exec")
	b.Logf("apply from nothing to 3 ready nodes, median of %d: systemd %s, exec %s, ratio %.2fx",
		len(times["exec"]), sd.Round(time.Millisecond), ex.Round(time.Millisecond), float64(sd)/float64(ex))
}

// applyOnce applies the spec from nothing and waits for /readyz on all
// three nodes, then takes the cluster down.
func applyOnce(b *testing.B, unibus, bin, roots, mgr string, spec []byte, env []string) (time.Duration, error) {
	work := b.TempDir()
	specDir := filepath.Join(work, "spec")
	os.MkdirAll(specDir, 0o755)
	if err := os.WriteFile(filepath.Join(specDir, "cluster.hcl"), spec, 0o644); err != nil {
		return 0, err
	}
	ports := make([]string, 12)
	for i := range ports {
		ports[i] = strconv.Itoa(scripttest.Port(b))
	}
	vars := []string{"-var", "ports=" + strings.Join(ports, ","), "-var", "binary=" + bin, "-var", "roots=" + roots, "-var", "manager=" + mgr}
	env = append(env, "UNIBUS_IDENTITY="+filepath.Join(work, "identity"))
	unibusRun := func(args ...string) error {
		cmd := exec.Command(unibus, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("unibus %s: %v\n%s", args[0], err, out)
		}
		return nil
	}
	t0 := time.Now()
	if err := unibusRun(append(append([]string{"apply", "-auto-approve"}, vars...), specDir)...); err != nil {
		return 0, err
	}
	client, err := caClient(filepath.Join(specDir, ".unibus", "pki", "client-ca.crt"))
	if err != nil {
		return 0, err
	}
	for _, i := range []int{0, 4, 8} {
		if err := waitOK(client, "https://127.0.0.1:"+ports[i]+"/readyz"); err != nil {
			return 0, err
		}
	}
	d := time.Since(t0)
	return d, unibusRun(append(append([]string{"down"}, vars...), specDir)...)
}

func caClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// waitOK polls url every 10ms until it answers 200, for up to 2 minutes.
func waitOK(c *http.Client, url string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after 2m", url)
}

func medianDuration(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
