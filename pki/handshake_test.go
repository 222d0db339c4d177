package pki

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

// The route CA and the client CA are separate trust roots: what one signs,
// a peer trusting only the other refuses, in both directions.
func TestRouteAndClientCAsDoNotCrossVerify(t *testing.T) {
	c := newCluster(t, P256)
	c.node(t, "n2", IssueOptions{}, []string{"n2.test"}, "127.0.0.1")
	routeCA, clientCA := c.dir.CACert(RouteCA), c.dir.CACert(ClientCA)

	mustPass(t, handshake(t, c.routeConfig(t, "n1", routeCA), c.routeConfig(t, "n2", routeCA), "n1.test"),
		"route cert to a peer trusting the route CA")
	// The dialling node trusts only the client CA: it refuses n1's route cert.
	mustFail(t, handshake(t, c.routeConfig(t, "n1", routeCA), c.routeConfig(t, "n2", clientCA), "n1.test"),
		"route cert to a dialler trusting only the client CA", "signed by unknown authority")
	// The listening node trusts only the client CA: it refuses n2's route cert.
	mustFail(t, handshake(t, c.routeConfig(t, "n1", clientCA), c.routeConfig(t, "n2", routeCA), "n1.test"),
		"route cert to a listener trusting only the client CA", "signed by unknown authority")

	// The reverse: the client-facing server cert (client CA) is good for a
	// client trusting the client CA and refused by one trusting the route CA.
	srvCrt, srvKey := c.files(KindServer, "n1")
	srv, err := ServerConfig(srvCrt, srvKey, "")
	if err != nil {
		t.Fatal(err)
	}
	good, err := ClientConfig("", "", clientCA)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := ClientConfig("", "", routeCA)
	if err != nil {
		t.Fatal(err)
	}
	mustPass(t, handshake(t, srv, good, "n1.test"), "client-facing cert to a client trusting the client CA")
	mustFail(t, handshake(t, srv, bad, "n1.test"), "client-facing cert to a client trusting only the route CA", "signed by unknown authority")
}

// A client certificate is refused on a route listener, and a route
// certificate cannot log in on the client port that requires client certs.
func TestClientCertRefusedOnRouteListener(t *testing.T) {
	c := newCluster(t, P256)
	aliceCrt, aliceKey := c.files(KindClient, "alice")
	routeCA, clientCA := c.dir.CACert(RouteCA), c.dir.CACert(ClientCA)

	// alice even trusts the route CA, so only the server's check can refuse.
	alice, err := ClientConfig(aliceCrt, aliceKey, routeCA)
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, handshake(t, c.routeConfig(t, "n1", routeCA), alice, "n1.test"), "client cert on the route listener", "signed by unknown authority")

	srvCrt, srvKey := c.files(KindServer, "n1")
	clientPort, err := ServerConfig(srvCrt, srvKey, clientCA)
	if err != nil {
		t.Fatal(err)
	}
	alice, err = ClientConfig(aliceCrt, aliceKey, clientCA)
	if err != nil {
		t.Fatal(err)
	}
	mustPass(t, handshake(t, clientPort, alice, "n1.test"), "client cert on the client port")
	mustFail(t, handshake(t, clientPort, c.routeConfig(t, "n1", clientCA), "n1.test"), "route cert on the client port", "signed by unknown authority")
}

// Extended key usages keep leaves to their role even under the right CA: a
// client cert cannot serve, a client-facing server cert cannot be a client.
func TestUsageKeepsLeavesToTheirRole(t *testing.T) {
	c := newCluster(t, P256)
	clientCA := c.dir.CACert(ClientCA)
	srvCrt, srvKey := c.files(KindServer, "n1")

	// unibus never issues a client cert with SANs; forge one with the
	// client CA so that hostname verification passes and only the missing
	// serverAuth usage can refuse it.
	tmpl, err := LeafTemplate(Leaf{Kind: KindServer, Name: "alice", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tmpl.ExtKeyUsage = KindClient.extKeyUsage()
	key, err := GenerateKey(P256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cas.Client.Cert, key.Public(), c.cas.Client.Key)
	if err != nil {
		t.Fatal(err)
	}
	aliceServes := baseConfig()
	aliceServes.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}
	plainClient, err := ClientConfig("", "", clientCA)
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, handshake(t, aliceServes, plainClient, ""), "client cert used as a server cert", "incompatible key usage")

	clientPort, err := ServerConfig(srvCrt, srvKey, clientCA)
	if err != nil {
		t.Fatal(err)
	}
	serverAsClient, err := ClientConfig(srvCrt, srvKey, clientCA)
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, handshake(t, clientPort, serverAsClient, "n1.test"), "server cert used as a client cert", "incompatible key usage")
}

// Expired and not-yet-valid certificates are refused, whichever side
// presents them.
func TestValidityWindowEnforced(t *testing.T) {
	c := newCluster(t, P256)
	now := time.Now()
	c.node(t, "old", IssueOptions{Now: now.Add(-400 * Day)}, []string{"old.test"}, "127.0.0.1")
	c.node(t, "future", IssueOptions{Now: now.Add(2 * Day)}, []string{"future.test"}, "127.0.0.1")
	routeCA := c.dir.CACert(RouteCA)

	for _, name := range []string{"old", "future"} {
		mustFail(t, handshake(t, c.routeConfig(t, name, routeCA), c.routeConfig(t, "n1", routeCA), name+".test"),
			name+" cert presented by the listener", "expired or is not yet valid")
		mustFail(t, handshake(t, c.routeConfig(t, "n1", routeCA), c.routeConfig(t, name, routeCA), "n1.test"),
			name+" cert presented by the dialler", "expired or is not yet valid")
	}
}

// Hostname verification uses the SANs: a name or an IP the certificate
// does not carry fails.
func TestSANMismatchFailsHostnameVerification(t *testing.T) {
	c := newCluster(t, P256)
	c.node(t, "far", IssueOptions{}, []string{"far.test"}, "10.9.9.9")
	routeCA := c.dir.CACert(RouteCA)
	n1 := c.routeConfig(t, "n1", routeCA)

	mustPass(t, handshake(t, n1, n1, "n1.test"), "matching DNS SAN")
	mustPass(t, handshake(t, n1, n1, ""), "matching IP SAN 127.0.0.1")
	mustFail(t, handshake(t, n1, n1, "n2.test"), "DNS name not in the SANs", "valid for n1.test, not n2.test")
	// far's cert is good but names 10.9.9.9, not the loopback IP we dial.
	mustFail(t, handshake(t, c.routeConfig(t, "far", routeCA), n1, ""), "IP not in the SANs", "valid for 10.9.9.9, not 127.0.0.1")
}

// Ed25519 keys work end to end, and the TLS 1.3 floor holds for every
// config unibus builds.
func TestEd25519AndTLS13Floor(t *testing.T) {
	c := newCluster(t, Ed25519)
	routeCA := c.dir.CACert(RouteCA)
	n1 := c.routeConfig(t, "n1", routeCA)
	mustPass(t, handshake(t, n1, n1, "n1.test"), "ed25519 route certs")

	old := n1.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	mustFail(t, handshake(t, n1, old, "n1.test"), "a TLS 1.2 dialler", "protocol version not supported")
}
