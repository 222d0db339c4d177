package scripttest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

// Ports handed out are below the kernel's ephemeral range (32768-60999 on
// Linux). A port picked with :0 is an ephemeral one, and a test that binds
// it only later (a monitor port opened by a drop-in half a minute on) can
// find it taken by any outgoing connection meanwhile: seen in CI as
// "port ... is already in use". Each test process walks up from a random
// start, so processes running side by side rarely meet.
const (
	portLow  = 20000
	portHigh = 32768
)

var ports struct {
	sync.Mutex
	next int
}

// FreePort is a loopback TCP port nothing listens on now, outside the
// ephemeral range, never the same twice in this process.
func FreePort() (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.next == 0 {
		ports.next = portLow + rand.IntN(portHigh-portLow)
	}
	for range portHigh - portLow {
		p := ports.next
		if ports.next++; ports.next >= portHigh {
			ports.next = portLow
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free loopback port in %d-%d", portLow, portHigh-1)
}

// Port is FreePort for a test, which fails without one.
func Port(t testing.TB) int {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
