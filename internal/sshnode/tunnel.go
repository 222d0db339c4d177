package sshnode

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// DialContext opens a TCP connection to addr on the node's loopback
// (127.0.0.0/8, ::1 or localhost) through the SSH connection
// (direct-tcpip): the node's own view, so a control plane that admits
// only loopback is reached. It fits http.Transport.DialContext, for
// https://127.0.0.1:PORT/healthz as the node sees it.
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("node %s: dial %s %s through ssh: only tcp", c.name, network, addr)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("node %s: dial %s through ssh: %v", c.name, addr, err)
	}
	if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("node %s: dial %s through ssh: only the node's loopback is reached this way", c.name, addr)
	}
	conn, err := c.conn.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node %s: dial %s on the node through ssh: %v (is the service listening there? does sshd allow TCP forwarding, AllowTcpForwarding yes or local?)", c.name, addr, err)
	}
	return conn, nil
}
