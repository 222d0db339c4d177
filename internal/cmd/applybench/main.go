// Command applybench measures unibus apply on the three-node local cluster
// (make bench-apply): from nothing to three ready nodes, beside starting the
// same three membershipd processes by hand (the same arguments and files)
// and waiting for /readyz, interleaved round by round; and the time of a
// plan and of a no-op apply on the running cluster. Medians are reported.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	unibus := flag.String("unibus", "bin/unibus", "unibus binary")
	membershipd := flag.String("membershipd", "bin/membershipd", "membershipd binary")
	spec := flag.String("spec", "examples/local-cluster/cluster.hcl", "the spec to apply")
	rounds := flag.Int("rounds", 5, "interleaved rounds")
	flag.Parse()
	if err := run(abs(*unibus), abs(*membershipd), *spec, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "applybench:", err)
		os.Exit(1)
	}
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}

// The local cluster's nodes and their HTTPS ports (base 18000).
var nodes = []struct {
	name string
	port int
}{{"n1", 18010}, {"n2", 18020}, {"n3", 18030}}

func run(unibus, membershipd, specFile string, rounds int) error {
	src, err := os.ReadFile(specFile)
	if err != nil {
		return err
	}
	var apply, byHand, plan, noop []time.Duration
	for r := range rounds {
		dir, err := os.MkdirTemp("", "applybench-")
		if err != nil {
			return err
		}
		specDir := filepath.Join(dir, "spec")
		os.MkdirAll(specDir, 0o755)
		text := strings.ReplaceAll(string(src), `"../../bin/membershipd"`, fmt.Sprintf("%q", membershipd))
		if err := os.WriteFile(filepath.Join(specDir, "cluster.hcl"), []byte(text), 0o644); err != nil {
			return err
		}
		env := append(os.Environ(), "UNIBUS_IDENTITY="+filepath.Join(dir, "identity"))
		unibusRun := func(args ...string) error {
			cmd := exec.Command(unibus, args...)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("unibus %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return nil
		}

		// Apply from nothing: identities, PKI, files, three starts, ready.
		t0 := time.Now()
		if err := unibusRun("apply", "-auto-approve", specDir); err != nil {
			return err
		}
		client, err := httpsClient(filepath.Join(specDir, ".unibus", "pki", "client-ca.crt"))
		if err != nil {
			return err
		}
		if err := waitReady(client); err != nil {
			return err
		}
		apply = append(apply, time.Since(t0))
		t1 := time.Now()
		if err := unibusRun("plan", specDir); err != nil {
			return err
		}
		plan = append(plan, time.Since(t1))
		t2 := time.Now()
		if err := unibusRun("apply", "-auto-approve", specDir); err != nil {
			return err
		}
		noop = append(noop, time.Since(t2))
		if err := unibusRun("down", specDir); err != nil {
			return err
		}

		// By hand: the same processes with the same arguments and files,
		// from an empty state dir, started at once.
		d, err := startByHand(specDir)
		if err != nil {
			return err
		}
		if err := waitReady(client); err != nil {
			stopAll(d.procs)
			return err
		}
		byHand = append(byHand, time.Since(d.t0))
		stopAll(d.procs)
		os.RemoveAll(dir)
		fmt.Printf("round %d: apply %s, by hand %s, plan %s, no-op apply %s\n", r+1,
			apply[r].Round(time.Millisecond), byHand[r].Round(time.Millisecond), plan[r].Round(time.Millisecond), noop[r].Round(time.Millisecond))
	}
	a, h := median(apply), median(byHand)
	fmt.Printf("apply from nothing to 3 ready nodes: %s; the same 3 processes started by hand: %s; ratio %.2fx (target <= 1.3x)\n",
		a.Round(time.Millisecond), h.Round(time.Millisecond), float64(a)/float64(h))
	fmt.Printf("plan of the running 3-node cluster: %s; no-op apply: %s\n", median(plan).Round(time.Millisecond), median(noop).Round(time.Millisecond))
	return nil
}

type handStart struct {
	t0    time.Time
	procs []*exec.Cmd
}

// startByHand reads each node's unit as the exec manager loaded it (its
// arguments, with %d and %S resolved, and its credentials), empties the
// node's state dir, copies the credentials, and starts all three.
func startByHand(specDir string) (*handStart, error) {
	type loaded struct {
		ExecStart []struct {
			Argv []string `json:"argv"`
		} `json:"exec_start"`
		Credentials []struct {
			ID   string `json:"id"`
			Path string `json:"path"`
		} `json:"credentials"`
		CredentialsDir   string   `json:"credentials_dir"`
		StateDirectories []string `json:"state_directories"`
		Environment      []string `json:"environment"`
	}
	var units []loaded
	for _, n := range nodes {
		root := filepath.Join(specDir, ".root", n.name)
		// Nodes sharing this machine have units of their own names.
		unit := "membershipd-" + n.name + ".service"
		data, err := os.ReadFile(filepath.Join(root, ".local", "state", "unibus-exec", unit, "unit.json"))
		if err != nil {
			return nil, err
		}
		var u loaded
		if err := json.Unmarshal(data, &u); err != nil {
			return nil, err
		}
		units = append(units, u)
	}
	h := &handStart{t0: time.Now()}
	for _, u := range units {
		for _, sd := range u.StateDirectories {
			os.RemoveAll(sd)
			os.MkdirAll(sd, 0o700)
		}
		os.MkdirAll(u.CredentialsDir, 0o700)
		for _, c := range u.Credentials {
			data, err := os.ReadFile(c.Path)
			if err != nil {
				return nil, err
			}
			os.WriteFile(filepath.Join(u.CredentialsDir, c.ID), data, 0o400)
		}
		cmd := exec.Command(u.ExecStart[0].Argv[0], u.ExecStart[0].Argv[1:]...)
		cmd.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY="+u.CredentialsDir)
		cmd.Env = append(cmd.Env, u.Environment...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			stopAll(h.procs)
			return nil, err
		}
		h.procs = append(h.procs, cmd)
	}
	return h, nil
}

func stopAll(procs []*exec.Cmd) {
	for _, p := range procs {
		p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		p.Wait()
	}
}

func httpsClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}, nil
}

// waitReady polls every node's /readyz until all answer 200.
func waitReady(c *http.Client) error {
	deadline := time.Now().Add(2 * time.Minute)
	for _, n := range nodes {
		for {
			resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/readyz", n.port))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("node %s not ready after 2m", n.name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
