package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"

	"github.com/unibus/unibus/provision"
	"github.com/unibus/unibus/rollout"
)

// nodeHTTP is how unibus reaches node n's control plane: its base URL and
// an HTTP client that trusts the cluster's client CA. It is the one place
// that knows the way there. A node on this machine is dialled at its bind
// address (loopback when the node binds every address); a node with
// target { ssh } through its SSH connection, on the node's own loopback,
// since the rendered IPAddressAllow= does not admit the operator's machine.
func nodeHTTP(s *provision.Spec, n *provision.Node) (rollout.Node, error) {
	host := n.Bind
	switch {
	case !host.IsValid() || host == netip.IPv4Unspecified():
		host = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case host == netip.IPv6Unspecified():
		host = netip.IPv6Loopback()
	}
	// A remote node is read on its own loopback through its SSH
	// connection: the rendered IPAddressAllow= does not admit this machine.
	var dial func(ctx context.Context, network, addr string) (net.Conn, error)
	if n.Target.SSH != "" {
		if !host.IsLoopback() {
			return rollout.Node{}, fmt.Errorf("node %s binds %s: its control plane is read over ssh on the node's loopback, so bind it to 0.0.0.0 or loopback", n.Name, host)
		}
		c, err := access().client(n)
		if err != nil {
			return rollout.Node{}, err
		}
		dial = c.DialContext
	}
	addr := net.JoinHostPort(host.String(), strconv.Itoa(n.Ports.HTTP))
	if !s.Cluster.ClientTLS {
		// Rendered without client TLS, the control plane is plain HTTP.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy, tr.DialContext = nil, dial
		return rollout.Node{Name: n.Name, BaseURL: "http://" + addr, Client: &http.Client{Transport: tr}}, nil
	}
	pem, err := os.ReadFile(s.Cluster.PKI.ClientCABundle)
	if err != nil {
		return rollout.Node{}, fmt.Errorf("node %s: the control plane serves HTTPS: read the client CA: %w", n.Name, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return rollout.Node{}, fmt.Errorf("node %s: %s holds no PEM certificate", n.Name, s.Cluster.PKI.ClientCABundle)
	}
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}
	// The certificate names the node's addresses and DNS names; the bind
	// address or loopback dialled may not be among them.
	if !slices.Contains(n.Addresses, host) {
		switch {
		case len(n.DNS) > 0:
			cfg.ServerName = n.DNS[0]
		case len(n.Addresses) > 0:
			cfg.ServerName = n.Addresses[0].String()
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	tr.Proxy = nil // a node's loopback is never reached through a proxy
	if dial != nil {
		tr.DialContext = dial
	}
	return rollout.Node{Name: n.Name, BaseURL: "https://" + addr, Client: &http.Client{Transport: tr}}, nil
}
