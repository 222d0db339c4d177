package membershipd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/unibus/unibus/pki"
)

// testCluster is three in-process membershipd nodes on loopback ports with
// mutual-TLS routes, certificates made for the test, and state dirs kept
// across a clean restart. It cannot crash a node (Shutdown flushes the
// store); tests that kill nodes use procCluster, which SIGKILLs processes.
type testCluster struct {
	t     testing.TB
	pki   pki.Dir
	cfgs  []Config
	nodes []*Daemon // nil while a node is down
}

func newTestCluster(t testing.TB, mutate func(i int, cfg *Config)) *testCluster {
	t.Helper()
	dir := t.TempDir()
	const n = 3
	pkiDir, pass := clusterFiles(t, dir, n)
	clusterPorts := freePorts(t, n)
	tc := &testCluster{t: t, pki: pkiDir, nodes: make([]*Daemon, n)}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		cfg := testConfig(t)
		// Route reconnects during restarts are expected; keep the test log
		// to errors that matter.
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError + 4}))
		cfg.NodeName = name
		cfg.BusAuth = BusAuthEnforce
		cfg.StateDir = filepath.Join(dir, name)
		cfg.Cluster = ClusterConfig{
			Name:         "test",
			Addr:         fmt.Sprintf("127.0.0.1:%d", clusterPorts[i]),
			RouteTLSCert: filepath.Join(string(pkiDir), "nodes", name, "route.crt"),
			RouteTLSKey:  filepath.Join(string(pkiDir), "nodes", name, "route.key"),
			RouteTLSCA:   filepath.Join(string(pkiDir), "route-ca.crt"),
			PassFile:     pass,
			KVReplicas:   3,
		}
		cfg.Cluster.Routes = routesFor(i, clusterPorts)
		if mutate != nil {
			mutate(i, &cfg)
		}
		tc.cfgs = append(tc.cfgs, cfg)
	}
	for i := range n {
		tc.start(i)
	}
	t.Cleanup(func() {
		for _, d := range tc.nodes {
			if d != nil {
				d.Shutdown()
			}
		}
	})
	return tc
}

// start opens and starts node i on its state dir. HTTP and NATS client
// ports are new each time; the route port stays, since peers dial it.
func (tc *testCluster) start(i int) *Daemon {
	tc.t.Helper()
	d, err := Open(context.Background(), tc.cfgs[i])
	if err != nil {
		tc.t.Fatalf("open %s: %v", tc.cfgs[i].NodeName, err)
	}
	if err := d.Start(context.Background()); err != nil {
		d.Shutdown()
		tc.t.Fatalf("start %s: %v", tc.cfgs[i].NodeName, err)
	}
	tc.nodes[i] = d
	return d
}

// waitReady waits until every running node's /readyz says 200.
func (tc *testCluster) waitReady(timeout time.Duration) {
	tc.t.Helper()
	waitFor(tc.t, "every running node ready", timeout, func() bool {
		for _, d := range tc.nodes {
			if d != nil && getJSONQuiet(endpoint(d, "/readyz")) != 200 {
				return false
			}
		}
		return true
	})
}

// halt stops node i at once for tests that need the in-process daemon's
// internals: no lame duck, no leader transfer. It is no crash: the NATS
// server's Shutdown flushes and closes the JetStream store. Tests of
// crashes use procCluster.kill (SIGKILL).
func (tc *testCluster) halt(i int) {
	tc.t.Helper()
	d := tc.nodes[i]
	d.shutdownOnce.Do(func() {
		if e, ok := d.dataPlane().(*embedded); ok {
			e.nc.Close()
			e.srv.Shutdown()
			e.srv.WaitForShutdown()
		}
		if d.httpSrv != nil {
			d.httpSrv.Close()
		}
		if d.stopBackground != nil {
			d.stopBackground()
		}
		d.db.Close()
	})
	tc.nodes[i] = nil
}

// readyzReason is node i's /readyz answer: status and reason.
func (tc *testCluster) readyzReason(i int) (int, string) {
	var e apiError
	code := getJSON(tc.t, endpoint(tc.nodes[i], "/readyz"), &e)
	return code, e.Error
}

// clusterFiles makes what the nodes of a test cluster share, under dir: a
// PKI folder (the layout of unibus pki) with route certificates for n1…nN
// on 127.0.0.1 and localhost, and a cluster password file, mode 0600.
func clusterFiles(t testing.TB, dir string, n int) (pki.Dir, string) {
	t.Helper()
	pkiDir := pki.Dir(filepath.Join(dir, "pki"))
	cas, err := pkiDir.InitCAs(pki.InitOptions{Cluster: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		node := pki.Node{Name: fmt.Sprintf("n%d", i+1), DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
		if _, err := pkiDir.IssueNode(cas, node, pki.IssueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pass := filepath.Join(dir, "cluster-pass")
	if err := os.WriteFile(pass, []byte("test-route-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return pkiDir, pass
}

// routesFor is node i's --routes: every other node's route port.
func routesFor(i int, routePorts []int) []string {
	var routes []string
	for j, p := range routePorts {
		if j != i {
			routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
		}
	}
	return routes
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}
