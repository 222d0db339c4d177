package membershipd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/pki"
)

func TestClusterForms(t *testing.T) {
	tc := newTestCluster(t, nil)
	tc.waitReady(30 * time.Second)
	for i, d := range tc.nodes {
		var h health
		getJSON(t, endpoint(d, "/healthz"), &h)
		c := h.NATS.Cluster
		if c == nil || c.Peers != 2 || !c.MetaLeaderKnown || !h.Posture.RouteTLS {
			t.Errorf("node %d healthz cluster %+v, route_tls %v; want 2 peers, a meta leader, route TLS", i+1, c, h.Posture.RouteTLS)
		}
	}
}

// TestRoutePortRefusesClientCertificates dials a node's route port the way
// a peer does, once with a route certificate and once with a certificate
// from the client CA: only the first gets through the handshake.
func TestRoutePortRefusesClientCertificates(t *testing.T) {
	tc := newTestCluster(t, nil)
	tc.waitReady(30 * time.Second)
	routeAddr := tc.cfgs[0].Cluster.Addr
	dial := func(certFile, keyFile string) error {
		cfg, err := pki.ClientConfig(certFile, keyFile, filepath.Join(string(tc.pki), "route-ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.ServerName = "localhost"
		// Routes start with TLS; the server's INFO comes after it.
		conn, err := net.DialTimeout("tcp", routeAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		tconn := tls.Client(conn, cfg)
		if err := tconn.Handshake(); err != nil {
			return err
		}
		// With TLS 1.3 the server's verdict on our certificate arrives at
		// the first read: its INFO, or an alert.
		line, err := bufio.NewReader(tconn).ReadString('\n')
		if err == nil && !strings.HasPrefix(line, "INFO ") {
			return fmt.Errorf("unexpected first line %q", line)
		}
		return err
	}
	nodeFile := func(name, f string) string { return filepath.Join(string(tc.pki), "nodes", name, f) }
	// A peer's route certificate: TLS completes and the server says INFO.
	if err := dial(nodeFile("n2", "route.crt"), nodeFile("n2", "route.key")); err != nil {
		t.Fatalf("route certificate refused on the route port: %v", err)
	}
	// The same node's client-facing certificate (client CA): a TLS alert.
	if err := dial(nodeFile("n2", "client.crt"), nodeFile("n2", "client.key")); !isTLSAlert(err) {
		t.Fatalf("a client-CA certificate was not refused by the route port's TLS: %v", err)
	}
}

// isTLSAlert: the peer refused the handshake (a bad certificate, an
// unknown CA), as opposed to closing a completed connection.
func isTLSAlert(err error) bool {
	var alert tls.AlertError
	return errors.As(err, &alert) || err != nil && strings.Contains(err.Error(), "remote error: tls")
}

// TestClusterControlPlane: the control plane and the bus across three
// nodes (real processes), through the SIGKILL and return of one.
func TestClusterControlPlane(t *testing.T) {
	alice := mustIdentity(t, "alice")
	pc := newProcCluster(t, alice)
	ctx := context.Background()
	on := func(i int, id *client.Identity) *client.Client { return pc.client(i, id) }

	// A member created on node 1 is seen on node 3 at once.
	bob := mustIdentity(t, "bob")
	if _, err := on(0, alice).CreateMember(ctx, client.Member{Handle: "bob", Role: "member", SignPub: bob.SignPub(), AgeRecipient: bob.Recipient()}); err != nil {
		t.Fatal(err)
	}
	if m, err := on(2, alice).Member(ctx, "bob"); err != nil || m.SignPub != bob.SignPub() {
		t.Fatalf("bob on node 3: %+v, %v", m, err)
	}
	room, key, err := on(0, alice).CreateRoomWithKey(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := on(0, alice).AddMemberWithKey(ctx, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}

	// The bus: bob on node 3 (his ACL came through the KV watch), alice on node 1.
	busOn := func(i int, id *client.Identity) *nats.Conn {
		nc, err := nats.Connect(pc.natsURL(i), id.NATSOptions()...)
		if err != nil {
			t.Fatalf("%s on node %d: %v", id.Handle, i+1, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	subject := client.Subject(room.ID, "chat")
	var bobSub *nats.Subscription
	waitFor(t, "bob's room ACL on node 3", 10*time.Second, func() bool {
		nc := busOn(2, bob)
		errs := make(chan error, 1)
		nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
		sub, err := nc.SubscribeSync(subject)
		if err != nil || nc.Flush() != nil {
			return false
		}
		select {
		case <-errs:
			nc.Close()
			return false
		case <-time.After(200 * time.Millisecond):
			bobSub = sub
			return true
		}
	})
	aliceNC := busOn(0, alice)
	send := func(text string) {
		t.Helper()
		if err := aliceNC.PublishMsg(client.SealMessage(key, "alice", subject, []byte(text))); err != nil {
			t.Fatal(err)
		}
	}
	receive := func(want string) {
		t.Helper()
		m, err := bobSub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("bob waiting for %q: %v", want, err)
		}
		if _, text, err := client.OpenMessage(key, m); err != nil || string(text) != want {
			t.Fatalf("bob got %q, %v; want %q", text, err, want)
		}
	}
	send("across the cluster")
	receive("across the cluster")

	// Node 2 is SIGKILLed. The other two keep serving.
	pc.kill(1)
	waitFor(t, "node 1 to report the missing follower", 20*time.Second, func() bool {
		code, reason := pc.readyz(0)
		return code == 503 && strings.Contains(reason, "followers current")
	})
	carol := mustIdentity(t, "carol")
	if _, err := on(0, alice).CreateMember(ctx, client.Member{Handle: "carol", Role: "member", SignPub: carol.SignPub(), AgeRecipient: carol.Recipient()}); err != nil {
		t.Fatalf("control plane with a node down: %v", err)
	}
	if _, err := on(2, alice).Member(ctx, "carol"); err != nil {
		t.Fatalf("carol on node 3 with node 2 down: %v", err)
	}
	send("with a node down")
	receive("with a node down")
	h, err := pc.health(0)
	if err != nil {
		t.Fatal(err)
	}
	if c := h.NATS.Cluster; c == nil || c.FollowersCurrent >= c.FollowersExpected || c.Peers != 1 {
		t.Errorf("healthz with a node down: %+v; want 1 peer and followers short", c)
	}

	// It comes back on its unclean store and catches up: every follower
	// current again, its own replicas as full as their leaders'.
	pc.restart(1)
	pc.waitConverged(60 * time.Second)
	if err := pc.replicasCaughtUp(1); err != nil {
		t.Error(err)
	}
	for i := range pc.nodes {
		h, err := pc.health(i)
		if err != nil {
			t.Fatal(err)
		}
		c := h.NATS.Cluster
		if c == nil || !c.Converged || c.FollowersCurrent != c.FollowersExpected || c.ReplicatedStreams == 0 || h.Posture.Store != "kv" || h.Posture.KVReplicas != 3 {
			t.Errorf("node %d after return: cluster %+v, posture %+v", i+1, c, h.Posture)
		}
	}
	if _, err := on(1, alice).Member(ctx, "carol"); err != nil {
		t.Fatalf("the returned node does not serve what was written while it was down: %v", err)
	}
}

// TestRaiseReplicas: a cluster started with --kv-replicas 1 (not HA) is
// raised to 3 by restarting its nodes one at a time with --kv-replicas 3,
// with the data kept.
func TestRaiseReplicas(t *testing.T) {
	alice := mustIdentity(t, "alice")
	tc := newTestCluster(t, func(i int, cfg *Config) {
		cfg.Cluster.KVReplicas = 1
		if i == 0 {
			if _, err := Bootstrap(context.Background(), cfg.StateDir, "alice", alice.SignPub(), alice.Recipient(), selfVouch(t, alice)); err != nil {
				t.Fatal(err)
			}
		}
	})
	tc.waitReady(60 * time.Second)
	replicas := func(i int) int {
		var h health
		getJSON(t, endpoint(tc.nodes[i], "/healthz"), &h)
		return h.Posture.KVReplicas
	}
	if r := replicas(0); r != 1 {
		t.Fatalf("kv_replicas = %d; want 1", r)
	}
	for i := range tc.nodes {
		tc.nodes[i].Shutdown()
		tc.cfgs[i].Cluster.KVReplicas = 3
		tc.start(i)
		tc.waitReady(60 * time.Second)
	}
	waitFor(t, "kv_replicas 3 on every node", 60*time.Second, func() bool {
		for i := range tc.nodes {
			if replicas(i) != 3 {
				return false
			}
		}
		return true
	})
	tc.waitReady(60 * time.Second)
	if _, err := client.New("http://"+tc.nodes[2].HTTPAddr(), alice).Member(context.Background(), "alice"); err != nil {
		t.Fatalf("alice after raising replicas: %v", err)
	}
}
