// Package sshnode reaches a remote node over SSH (golang.org/x/crypto/ssh):
// its files as [provision.Writer], commands, and TCP ports on its loopback.
// Everything runs over one connection per node, made by [Dial]: files are
// read and written by small POSIX shell scripts, so the node needs sshd
// and coreutils, no SFTP and no agent of ours.
package sshnode

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"strings"
)

// Target is where a node's sshd is: user@host:port.
type Target struct {
	User string
	// HostPort is host:port as dialled and as known_hosts knows it.
	HostPort string
}

func (t Target) String() string { return t.User + "@" + t.HostPort }

// ParseTarget reads user@host:port. The port defaults to 22 and the user
// to the local user; an IPv6 address with a port is written [::1]:22.
func ParseTarget(s string) (Target, error) {
	var t Target
	host := s
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		t.User, host = s[:i], s[i+1:]
		if t.User == "" {
			return t, fmt.Errorf("ssh target %q: empty user before @ (write user@host:port, or host alone for the local user)", s)
		}
	}
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		// No port, or a bare IPv6 address.
		h, port = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), "22"
	}
	if h == "" || strings.ContainsAny(h, "/ ") {
		return t, fmt.Errorf("ssh target %q: want user@host:port", s)
	}
	t.HostPort = net.JoinHostPort(h, port)
	if t.User == "" {
		t.User = localUser()
	}
	return t, nil
}

func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}
