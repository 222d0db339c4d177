package store

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// testJetStream starts one nats-server with JetStream on a loopback port,
// stopped at the end of the test.
func testJetStream(tb testing.TB) *server.Server {
	tb.Helper()
	srv, err := server.NewServer(&server.Options{
		ServerName: "single", Host: "127.0.0.1", Port: -1,
		JetStream: true, StoreDir: tb.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	srv.Start()
	tb.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats-server not ready after 10s")
	}
	return srv
}

// testConnect connects to srv and returns a JetStream context; both close
// at the end of the test.
func testConnect(tb testing.TB, srv *server.Server) jetstream.JetStream {
	tb.Helper()
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return js
}

// testCluster is n nats-servers with JetStream, routed to each other on
// loopback, named n0..n{n-1}.
type testCluster struct {
	servers []*server.Server
}

// newTestCluster starts the cluster and waits until the JetStream meta
// group has a leader that sees every server. syncAlways is nats-server's
// sync_always (the daemon's default --js-sync always).
func newTestCluster(tb testing.TB, n int, syncAlways bool) *testCluster {
	tb.Helper()
	// Route ports are chosen before any server starts because every server
	// needs every other's address; Port -1 would only be known after start.
	ports := make([]int, n)
	var routes []string
	for i := range ports {
		ports[i] = freeLoopbackPort(tb)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	c := &testCluster{}
	for i := range n {
		srv, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: tb.TempDir(), NoLog: true, NoSigs: true,
			SyncAlways: syncAlways,
			Cluster:    server.ClusterOpts{Name: "unibus-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			tb.Fatal(err)
		}
		srv.Start()
		tb.Cleanup(srv.Shutdown)
		c.servers = append(c.servers, srv)
	}
	for _, srv := range c.servers {
		if !srv.ReadyForConnections(10 * time.Second) {
			tb.Fatalf("%s not ready after 10s", srv.Name())
		}
	}
	c.waitMeta(tb, n)
	return c
}

func freeLoopbackPort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitMeta waits for a meta leader that counts n JetStream peers and for
// every server to be current with it: before that, creating an R3 stream
// may fail for want of peers.
func (c *testCluster) waitMeta(tb testing.TB, n int) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := true
		leader := false
		for _, srv := range c.servers {
			if srv.JetStreamIsLeader() && len(srv.JetStreamClusterPeers()) == n {
				leader = true
			}
			if !srv.JetStreamIsCurrent() {
				ready = false
			}
		}
		if ready && leader {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("jetstream cluster of %d did not form within 30s", n)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// js connects to server i.
func (c *testCluster) js(tb testing.TB, i int) jetstream.JetStream {
	tb.Helper()
	return testConnect(tb, c.servers[i])
}

// streamLeader is the name of the server leading stream, or "".
func (c *testCluster) streamLeader(stream string) string {
	for _, srv := range c.servers {
		if srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return srv.Name()
		}
	}
	return ""
}

// testCtx is a context bounded well inside the test timeout.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}
