package pki

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// handshake runs one real TLS connection on loopback: srv accepts, cli dials
// serverName (empty: the IP dialled). It returns nil only when both sides
// completed the handshake and exchanged a byte, so a refusal by either side
// shows up: in TLS 1.3 a client learns that the server refused its
// certificate only when it reads.
func handshake(t *testing.T, srv, cli *tls.Config, serverName string) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Server(conn, srv)
		if err := tc.Handshake(); err != nil {
			serverErr <- err
			return
		}
		_, err = tc.Write([]byte{1})
		serverErr <- err
	}()
	cli = cli.Clone()
	if len(cli.Certificates) > 0 {
		// Go's client quietly withholds a certificate whose issuer the
		// server did not list; an attacker would not. Always present it, so
		// the test exercises the server's verification.
		cert := cli.Certificates[0]
		cli.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	cli.ServerName = serverName
	if serverName == "" {
		cli.ServerName = "127.0.0.1"
	}
	conn, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(conn, cli)
	clientErr := tc.Handshake()
	if clientErr == nil {
		_, clientErr = tc.Read(make([]byte, 1))
	}
	if clientErr != nil {
		conn.Close() // unblock the server if it waits for us
	}
	if err := <-serverErr; err != nil {
		return errors.Join(errors.New("server: "+err.Error()), clientErr)
	}
	return clientErr
}

// cluster is a PKI folder with both CAs, node n1 (n1.test, 127.0.0.1) and
// client alice, made through the public Dir API.
type cluster struct {
	dir Dir
	cas CAs
}

func newCluster(t *testing.T, kt KeyType) *cluster {
	t.Helper()
	d := Dir(t.TempDir())
	cas, err := d.InitCAs(InitOptions{Cluster: "test", KeyType: kt})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{dir: d, cas: cas}
	c.node(t, "n1", IssueOptions{}, []string{"n1.test"}, "127.0.0.1")
	if _, err := d.IssueClient(cas.Client, Leaf{Name: "alice", KeyType: kt}, IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) node(t *testing.T, name string, o IssueOptions, dns []string, ips ...string) {
	t.Helper()
	n := Node{Name: name, DNS: dns}
	for _, ip := range ips {
		n.IPs = append(n.IPs, net.ParseIP(ip))
	}
	if _, err := c.dir.IssueNode(c.cas, n, o); err != nil {
		t.Fatal(err)
	}
}

// files returns cert and key paths of a leaf in the cluster folder.
func (c *cluster) files(kind Kind, name string) (string, string) {
	return c.dir.LeafFiles(Leaf{Kind: kind, Name: name})
}

// routeConfig is the real route listener/dialer config of a node, trusting
// the bundle file caFile.
func (c *cluster) routeConfig(t *testing.T, name, caFile string) *tls.Config {
	t.Helper()
	crt, key := c.files(KindRoute, name)
	cfg, err := RouteConfig(crt, key, caFile)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// mustFail wants a refused handshake whose error says why (want), so a
// refusal for another reason — a broken fixture — does not pass.
func mustFail(t *testing.T, err error, what, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: handshake succeeded, want it refused (%s)", what, want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: refused, but not for %q: %v", what, want, err)
	}
}

func mustPass(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: handshake failed: %v", what, err)
	}
}
