//go:build !linux

package sshnode

import "net"

// quickAck is Linux's TCP_QUICKACK (see quickack_linux.go); elsewhere a
// connection keeps the kernel's delayed ACKs.
func quickAck(c net.Conn) net.Conn { return c }
