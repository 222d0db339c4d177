package membershipd

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unibus/unibus/pki"
)

func TestClusterForms(t *testing.T) {
	tc := newTestCluster(t, nil)
	tc.waitReady(30 * time.Second)
	for i, d := range tc.nodes {
		var h health
		getJSON(t, endpoint(d, "/healthz"), &h)
		c := h.NATS.Cluster
		if c == nil || c.Peers != 2 || !c.MetaLeader || !h.Posture.RouteTLS {
			t.Errorf("node %d healthz cluster %+v, route_tls %v; want 2 peers, a meta leader, route TLS", i+1, c, h.Posture.RouteTLS)
		}
	}
}

// TestRoutePortRefusesClientCertificates dials a node's route port the way
// a peer does, once with a route certificate and once with a certificate
// from the client CA: only the first gets through the handshake.
func TestRoutePortRefusesClientCertificates(t *testing.T) {
	tc := newTestCluster(t, nil)
	tc.waitReady(30 * time.Second)
	routeAddr := tc.cfgs[0].Cluster.Addr
	dial := func(certFile, keyFile string) error {
		cfg, err := pki.ClientConfig(certFile, keyFile, filepath.Join(string(tc.pki), "route-ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.ServerName = "localhost"
		// Routes start with TLS; the server's INFO comes after it.
		conn, err := net.DialTimeout("tcp", routeAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		tconn := tls.Client(conn, cfg)
		if err := tconn.Handshake(); err != nil {
			return err
		}
		// With TLS 1.3 the server's verdict on our certificate arrives at
		// the first read: its INFO, or an alert.
		line, err := bufio.NewReader(tconn).ReadString('\n')
		if err == nil && !strings.HasPrefix(line, "INFO ") {
			return fmt.Errorf("unexpected first line %q", line)
		}
		return err
	}
	nodeFile := func(name, f string) string { return filepath.Join(string(tc.pki), "nodes", name, f) }
	// A peer's route certificate: TLS completes and the server says INFO.
	if err := dial(nodeFile("n2", "route.crt"), nodeFile("n2", "route.key")); err != nil {
		t.Fatalf("route certificate refused on the route port: %v", err)
	}
	// The same node's client-facing certificate (client CA): a TLS alert.
	if err := dial(nodeFile("n2", "client.crt"), nodeFile("n2", "client.key")); !isTLSAlert(err) {
		t.Fatalf("a client-CA certificate was not refused by the route port's TLS: %v", err)
	}
}

// isTLSAlert: the peer refused the handshake (a bad certificate, an
// unknown CA), as opposed to closing a completed connection.
func isTLSAlert(err error) bool {
	var alert tls.AlertError
	return errors.As(err, &alert) || err != nil && strings.Contains(err.Error(), "remote error: tls")
}
