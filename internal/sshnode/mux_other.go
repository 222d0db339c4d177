//go:build !linux

package sshnode

import (
	"errors"
	"net"
)

// peerUID is known on Linux only (SO_PEERCRED); elsewhere no connection
// is shared: the mux refuses every client, and clients dial directly.
func peerUID(net.Conn) (int, error) {
	return -1, errors.New("sharing SSH connections needs Linux (SO_PEERCRED)")
}
