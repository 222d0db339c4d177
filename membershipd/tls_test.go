package membershipd

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/unibus/unibus/pki"
)

// TestClientTLS runs the embedded server with a client-CA-signed server
// certificate and --tls-ca: a client with a client-CA certificate connects,
// one without a certificate or with a route-CA certificate does not, and the
// daemon's own in-process connection (readiness) still works.
func TestClientTLS(t *testing.T) {
	dir := pki.Dir(t.TempDir())
	cas, err := dir.InitCAs(pki.InitOptions{Cluster: "test"})
	if err != nil {
		t.Fatal(err)
	}
	node := pki.Node{Name: "n1", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	if _, err := dir.IssueNode(cas, node, pki.IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dir.IssueClient(cas.Client, pki.Leaf{Name: "alice"}, pki.IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	p := func(elem ...string) string { return filepath.Join(append([]string{string(dir)}, elem...)...) }

	cfg := testConfig(t)
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = p("nodes", "n1", "client.crt"), p("nodes", "n1", "client.key"), p("client-ca.crt")
	d := startDaemon(t, cfg)
	if code := getJSON(t, endpoint(d, "/readyz"), nil); code != 200 {
		t.Fatalf("readyz with client TLS = %d", code)
	}
	var h health
	getJSON(t, endpoint(d, "/healthz"), &h)
	if !h.Posture.ClientTLS || !h.Posture.ClientCert {
		t.Errorf("posture %+v; want client_tls and client_cert_auth true", h.Posture)
	}

	natsURL := strings.Replace(d.NATSURL(), "nats://", "tls://", 1)
	trustServer := nats.RootCAs(p("client-ca.crt"))

	nc, err := nats.Connect(natsURL, trustServer, nats.ClientCert(p("clients", "alice.crt"), p("clients", "alice.key")))
	if err != nil {
		t.Fatalf("client with a client-CA certificate refused: %v", err)
	}
	if err := nc.Publish("hello", []byte("x")); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	if nc, err := nats.Connect(natsURL, trustServer, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("client without a certificate was accepted")
	}
	if nc, err := nats.Connect(natsURL, trustServer, nats.NoReconnect(), nats.ClientCert(p("nodes", "n1", "route.crt"), p("nodes", "n1", "route.key"))); err == nil {
		nc.Close()
		t.Fatal("client with a route-CA certificate was accepted on the client port")
	}
}
