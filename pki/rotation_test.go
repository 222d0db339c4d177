package pki

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A route CA rotation with overlap keeps every node pair handshaking at
// every step; doing a step early breaks them, which shows the order is what
// keeps the cluster up.
func TestCARotationWithOverlap(t *testing.T) {
	c := newCluster(t, P256)
	nodes := []string{"n1", "n2", "n3"}
	for _, n := range nodes[1:] {
		c.node(t, n, IssueOptions{}, []string{n + ".test"}, "127.0.0.1")
	}
	// Each node has its own copy of the route trust bundle, as on real hosts.
	trustDir := t.TempDir()
	trustFile := func(n string) string { return filepath.Join(trustDir, n+"-route-ca.crt") }
	distribute := func(n string) {
		t.Helper()
		data, err := os.ReadFile(c.dir.CACert(RouteCA))
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteFileAtomic(trustFile(n), data, CertMode); err != nil {
			t.Fatal(err)
		}
	}
	allPairs := func(step string) {
		t.Helper()
		for _, a := range nodes {
			for _, b := range nodes {
				if a != b {
					mustPass(t, handshake(t, c.routeConfig(t, a, trustFile(a)), c.routeConfig(t, b, trustFile(b)), a+".test"),
						step+": "+b+" dials "+a)
				}
			}
		}
	}
	for _, n := range nodes {
		distribute(n)
	}
	allPairs("before rotation")
	oldCrt, oldKey := c.files(KindRoute, "n1")
	oldLeaf := filepath.Join(trustDir, "old-n1.crt")
	copyFile(t, oldCrt, oldLeaf)
	copyFile(t, oldKey, oldLeaf+".key")

	// Step 1: the new CA joins the bundle and becomes the signer.
	newCA, err := c.dir.RotateCA(RouteCA, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	c.cas.Route = newCA
	trust, err := ReadBundleFile(c.dir.CACert(RouteCA))
	if err != nil {
		t.Fatal(err)
	}
	if len(trust) != 2 || !trust.Active().Equal(newCA.Cert) {
		t.Fatalf("after rotation the bundle has %d CAs, want old and new with new last", len(trust))
	}
	// Too early: a leaf from the new CA before a peer trusts it is refused.
	c.node(t, "early", IssueOptions{}, []string{"early.test"}, "127.0.0.1")
	mustFail(t, handshake(t, c.routeConfig(t, "n1", trustFile("n1")), c.routeConfig(t, "early", c.dir.CACert(RouteCA)), "n1.test"),
		"new-CA leaf before the bundle reached the peer", "unknown authority")
	if err := os.RemoveAll(filepath.Join(string(c.dir), "nodes", "early")); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		distribute(n)
		allPairs("bundle on " + n)
	}

	// Step 2: leaves move to the new CA one by one.
	for _, n := range nodes {
		want := Node{Name: n, DNS: []string{n + ".test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}.Leaves()[0]
		if d := c.dir.DecideLeaf(want, newCA, time.Now()); d.Action != Renew || !strings.Contains(d.Reason, "issuer changed") {
			t.Fatalf("%s before reissue: %+v, want renew because the issuer changed", n, d)
		}
		if _, dropped := trust.Prune(leafCertsOf(t, c, nodes)); len(dropped) != 0 {
			t.Fatalf("prune while %s still has an old leaf dropped %d CAs", n, len(dropped))
		}
		c.node(t, n, IssueOptions{Force: true}, []string{n + ".test"}, "127.0.0.1")
		if d := c.dir.DecideLeaf(want, newCA, time.Now()); d.Action != Keep {
			t.Fatalf("%s after reissue: %+v, want keep", n, d)
		}
		allPairs("leaf of " + n + " reissued")
	}

	// Step 3: the old CA leaves the bundle once no leaf needs it.
	dropped, err := c.dir.PruneCA(RouteCA)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 1 || dropped[0].Equal(newCA.Cert) {
		t.Fatalf("prune dropped %d CAs, want exactly the old one", len(dropped))
	}
	for _, n := range nodes {
		distribute(n)
		allPairs("pruned bundle on " + n)
	}
	old, err := RouteConfig(oldLeaf, oldLeaf+".key", trustFile("n2"))
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, handshake(t, c.routeConfig(t, "n1", trustFile("n1")), old, "n1.test"),
		"old-CA leaf after the old CA left the bundle", "unknown authority")
}

func leafCertsOf(t *testing.T, c *cluster, nodes []string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, n := range nodes {
		crt, _ := c.files(KindRoute, n)
		cert, err := ReadCertFile(crt)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cert)
	}
	return out
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
