package membershipd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/unibus/unibus/client"
)

// drainCluster is a three-node in-process cluster with alice, its first
// admin, and bob, a member.
type drainCluster struct {
	*testCluster
	alice, bob *client.Identity
}

func newDrainCluster(t *testing.T) *drainCluster {
	t.Helper()
	alice := mustIdentity(t, "alice")
	tc := newTestCluster(t, func(i int, cfg *Config) {
		if i == 0 {
			if _, err := Bootstrap(context.Background(), cfg.StateDir, "alice", alice.SignPub(), alice.Recipient(), selfVouch(t, alice)); err != nil {
				t.Fatal(err)
			}
		}
	})
	tc.waitReady(60 * time.Second)
	bob := mustIdentity(t, "bob")
	if _, err := tc.clientOn(0, alice).CreateMember(context.Background(), client.Member{Handle: "bob", Role: "member", SignPub: bob.SignPub(), AgeRecipient: bob.Recipient()}); err != nil {
		t.Fatal(err)
	}
	return &drainCluster{testCluster: tc, alice: alice, bob: bob}
}

func (tc *testCluster) clientOn(i int, id *client.Identity) *client.Client {
	return client.New("http://"+tc.nodes[i].HTTPAddr(), id)
}

func (tc *testCluster) natsServer(i int) *server.Server {
	return tc.nodes[i].dataPlane().(*embedded).srv
}

// streamsOf is every stream node i holds a replica of, by account.
func (tc *testCluster) streamsOf(i int) map[string][]string {
	tc.t.Helper()
	jsz, err := tc.natsServer(i).Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		tc.t.Fatal(err)
	}
	out := map[string][]string{}
	for _, a := range jsz.AccountDetails {
		for _, s := range a.Streams {
			out[a.Name] = append(out[a.Name], s.Name)
		}
	}
	return out
}

// streamLeaders counts, per stream, the running nodes that say they lead it,
// and names the node of each stream led once.
func (tc *testCluster) streamLeaders() (count map[string]int, by map[string]int) {
	count, by = map[string]int{}, map[string]int{}
	for i := range tc.nodes {
		if tc.nodes[i] == nil {
			continue
		}
		for acc, names := range tc.streamsOf(i) {
			for _, s := range names {
				count[acc+"/"+s] += 0
				if tc.natsServer(i).JetStreamIsStreamLeader(acc, s) {
					count[acc+"/"+s]++
					by[acc+"/"+s] = i
				}
			}
		}
	}
	return count, by
}

// pullLeadersTo moves every stream leadership and the meta group onto node
// x, with the JetStream API's preferred placement, so that a drain of x has
// everything to move.
func (tc *testCluster) pullLeadersTo(x int) {
	tc.t.Helper()
	name := tc.cfgs[x].NodeName
	waitFor(tc.t, name+" leading every stream and the meta group", 60*time.Second, func() bool {
		done := true
		for i := range tc.nodes {
			if i == x {
				continue
			}
			nc := tc.nodes[i].dataPlane().(*embedded).nc
			for _, s := range tc.streamsOf(i)[server.DEFAULT_GLOBAL_ACCOUNT] {
				if tc.natsServer(i).JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, s) {
					done = false
					req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": name}})
					nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+s, req, time.Second)
				}
			}
			if tc.natsServer(i).JetStreamIsLeader() {
				done = false
				// The meta stepdown needs the system account: the daemon's
				// own system identity, as drain uses it.
				sys, err := tc.nodes[i].sysID.connect(tc.natsServer(i))
				if err == nil {
					req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": name}})
					sys.Request(metaStepdownSubject, req, time.Second)
					sys.Close()
				}
			}
		}
		if !done {
			time.Sleep(200 * time.Millisecond)
		}
		return done
	})
}

// writer makes signed control-plane writes (a room each) through one node
// until stopped, and records every failure and each success's time.
type writer struct {
	mu     sync.Mutex
	fails  []error
	okAt   []time.Time
	stop   chan struct{}
	done   chan struct{}
	client *client.Client
}

func startWriter(c *client.Client) *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan struct{}), client: c}
	go func() {
		defer close(w.done)
		for n := 0; ; n++ {
			select {
			case <-w.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.CreateRoom(ctx, fmt.Sprintf("w%d", n))
			cancel()
			w.mu.Lock()
			if err != nil {
				w.fails = append(w.fails, err)
			} else {
				w.okAt = append(w.okAt, time.Now())
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// writes is how many writes have succeeded so far.
func (w *writer) writes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.okAt)
}

func (w *writer) halt() {
	close(w.stop)
	<-w.done
}

// longestGap is the longest time between two successive successful writes.
func (w *writer) longestGap() time.Duration {
	var g time.Duration
	for i := 1; i < len(w.okAt); i++ {
		g = max(g, w.okAt[i].Sub(w.okAt[i-1]))
	}
	return g
}

// leadingMeta is the running node that leads the meta group, or -1.
func (tc *testCluster) leadingMeta() int {
	for i := range tc.nodes {
		if tc.nodes[i] != nil && tc.natsServer(i).JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// TestDrainMovesLeadersOff: node 1 leads every stream and the meta group;
// after its drain it leads none of them, the other two do, every stream has
// exactly one leader, and writes through node 2 succeed throughout.
func TestDrainMovesLeadersOff(t *testing.T) {
	tc := newDrainCluster(t)
	const x = 0
	tc.pullLeadersTo(x)
	tc.waitReady(60 * time.Second)
	streams := tc.streamsOf(x)[server.DEFAULT_GLOBAL_ACCOUNT]
	if len(streams) < 3 {
		t.Fatalf("node 1 holds %d streams in the daemon account; want the control-plane buckets and the object store", len(streams))
	}

	w := startWriter(tc.clientOn(1, tc.alice))
	waitFor(t, "writes before the drain", 10*time.Second, func() bool { return w.writes() >= 5 })
	rep, err := tc.clientOn(x, tc.alice).Drain(context.Background(), client.DrainOptions{})
	if err != nil {
		w.halt()
		t.Fatalf("drain: %v", err)
	}
	after := w.writes()
	waitFor(t, "writes after the drain", 10*time.Second, func() bool { return w.writes() >= after+5 })
	w.halt()

	t.Logf("drain of n1: %d moved in %d ms, %d writes through n2 during and after, longest gap %s", len(rep.Moved), rep.ElapsedMS, len(w.okAt), w.longestGap())
	if !rep.Done || !rep.RestartSafe || !rep.MetaLeader || len(rep.Stuck) != 0 || len(rep.AtRisk) != 0 {
		t.Errorf("report %+v; want done, restart safe, meta leader, nothing stuck or at risk", rep)
	}
	// Every stream and the meta group moved, each to another node.
	moved := map[string]string{}
	for _, g := range rep.Moved {
		if g.Leader == "" || g.Leader == "n1" {
			t.Errorf("moved %+v: its new leader must be another node", g)
		}
		moved[g.Kind+" "+g.Stream] = g.Leader
	}
	for _, s := range streams {
		if _, ok := moved["stream "+s]; !ok {
			t.Errorf("stream %s is not in the report's moved list %v", s, moved)
		}
	}
	if _, ok := moved["meta "]; !ok {
		t.Errorf("the meta group is not in the report's moved list %v", moved)
	}

	if tc.natsServer(x).JetStreamIsLeader() {
		t.Error("node 1 still leads the meta group")
	}
	if m := tc.leadingMeta(); m <= 0 {
		t.Errorf("meta leader is node index %d; want node 2 or 3", m)
	}
	count, by := tc.streamLeaders()
	for s, n := range count {
		if n != 1 {
			t.Errorf("%s has %d leaders; want exactly 1", s, n)
		} else if by[s] == x {
			t.Errorf("%s is still led by node 1", s)
		}
	}
	if len(w.fails) > 0 {
		t.Errorf("%d of %d writes through node 2 failed during the drain; first: %v", len(w.fails), len(w.fails)+len(w.okAt), w.fails[0])
	}
}

// TestDrainAdminOnly: no request but an admin's, signed and fresh, drains.
func TestDrainAdminOnly(t *testing.T) {
	tc := newDrainCluster(t)
	d := tc.nodes[0]
	body := []byte(`{"dry_run":true}`)

	unsigned, _ := http.NewRequest("POST", endpoint(d, "/v1/admin/drain"), nil)
	unsigned.Header.Set("Content-Type", "application/json")
	if code, c := send(t, unsigned, body); code != 401 || c != "unauthenticated" {
		t.Errorf("unsigned: %d %s; want 401 unauthenticated", code, c)
	}
	if code, c := send(t, signedRequest(t, d, tc.bob, "POST", "/v1/admin/drain", "application/json", body, time.Now()), body); code != 403 || c != "forbidden" {
		t.Errorf("member: %d %s; want 403 forbidden", code, c)
	}
	var refused *client.APIError
	if _, err := tc.clientOn(0, tc.bob).Drain(context.Background(), client.DrainOptions{LameDuck: true}); !errors.As(err, &refused) || refused.Status != 403 {
		t.Errorf("member through the client: %v; want 403", err)
	}
	// An admin's request signed for another path, sent to the drain: the
	// signature covers the path.
	moved := signedRequest(t, d, tc.alice, "POST", "/v1/rooms", "application/json", body, time.Now())
	moved.URL.Path = "/v1/admin/drain"
	if code, c := send(t, moved, body); code != 401 || c != "bad_signature" {
		t.Errorf("admin signature for another path: %d %s; want 401 bad_signature", code, c)
	}
	admin := signedRequest(t, d, tc.alice, "POST", "/v1/admin/drain", "application/json", body, time.Now())
	if code, c := send(t, admin, body); code != 200 {
		t.Fatalf("admin dry run: %d %s; want 200", code, c)
	}
	if code, c := send(t, admin, body); code != 401 || c != "replayed_nonce" {
		t.Errorf("replayed admin request: %d %s; want 401 replayed_nonce", code, c)
	}
}

// TestDrainDryRunWithANodeDown: with node 3 down, losing node 1 would leave
// every R3 stream and the meta group with one of three: the dry run says
// so, and a drain without force refuses, having moved nothing.
func TestDrainDryRunWithANodeDown(t *testing.T) {
	tc := newDrainCluster(t)
	const x = 0
	alice := tc.clientOn(x, tc.alice)
	ctx := context.Background()
	healthy, err := alice.Drain(ctx, client.DrainOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !healthy.RestartSafe || !healthy.Done || len(healthy.AtRisk) != 0 {
		t.Fatalf("dry run on a converged cluster: %+v; want restart safe, nothing at risk", healthy)
	}

	tc.halt(2)
	var rep client.DrainReport
	waitFor(t, "the dry run to see node 3 gone", 60*time.Second, func() bool {
		rep, err = alice.Drain(ctx, client.DrainOptions{DryRun: true})
		return err == nil && !rep.RestartSafe
	})
	atRisk := map[string]bool{}
	for _, g := range rep.AtRisk {
		atRisk[g.Kind+" "+g.Stream] = true
	}
	for _, s := range tc.streamsOf(x)[server.DEFAULT_GLOBAL_ACCOUNT] {
		if !atRisk["stream "+s] {
			t.Errorf("stream %s is not reported at risk: %+v", s, rep.AtRisk)
		}
	}
	if !atRisk["meta "] {
		t.Errorf("the meta group is not reported at risk: %+v", rep.AtRisk)
	}
	if rep.Done {
		t.Error("dry run says done with node 3 down")
	}

	_, ledBefore := tc.streamLeaders()
	metaBefore := tc.natsServer(x).JetStreamIsLeader()
	_, err = alice.Drain(ctx, client.DrainOptions{})
	var refused *client.DrainRefusedError
	if !errors.As(err, &refused) || refused.Code != "would_lose_quorum" {
		t.Fatalf("drain with node 3 down: %v; want a would_lose_quorum refusal", err)
	}
	if len(refused.Report.Moved) != 0 || len(refused.Report.AtRisk) == 0 {
		t.Errorf("refusal report %+v; want nothing moved and the groups at risk", refused.Report)
	}
	_, ledAfter := tc.streamLeaders()
	for s, i := range ledBefore {
		if i == x && ledAfter[s] != x {
			t.Errorf("%s moved off node 1 although the drain was refused", s)
		}
	}
	if metaBefore && !tc.natsServer(x).JetStreamIsLeader() {
		t.Error("the meta group moved off node 1 although the drain was refused")
	}

	// Forced, it moves everything to node 2, the one left.
	forced, err := alice.Drain(ctx, client.DrainOptions{Force: true})
	if err != nil || !forced.Done {
		t.Fatalf("forced drain: %+v, %v", forced, err)
	}
	count, by := tc.streamLeaders()
	for s, n := range count {
		if n != 1 || by[s] != 1 {
			t.Errorf("after the forced drain %s has %d leaders, on node index %d; want one, node 2", s, n, by[s])
		}
	}
	if tc.natsServer(x).JetStreamIsLeader() {
		t.Error("node 1 still leads the meta group after the forced drain")
	}
}

// TestDrainLameDuck: a drain with lame duck answers, then closes the
// node's NATS port; the other two keep serving, and the node restarts
// cleanly into the cluster.
func TestDrainLameDuck(t *testing.T) {
	tc := newDrainCluster(t)
	const x = 0
	natsAddr := strings.TrimPrefix(tc.nodes[x].NATSURL(), "nats://")
	rep, err := tc.clientOn(x, tc.alice).Drain(context.Background(), client.DrainOptions{LameDuck: true})
	if err != nil || !rep.Done || !rep.LameDuck {
		t.Fatalf("drain with lame duck: %+v, %v", rep, err)
	}
	waitFor(t, "node 1's NATS port to close", 30*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", natsAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	waitFor(t, "node 1 /readyz lame_duck", 10*time.Second, func() bool {
		code, reason := tc.readyzReason(x)
		return code == 503 && strings.HasPrefix(reason, "lame_duck:")
	})
	if _, err := tc.clientOn(1, tc.alice).CreateRoom(context.Background(), "after-lame-duck"); err != nil {
		t.Errorf("write through node 2 with node 1 in lame duck: %v", err)
	}
	if err := tc.nodes[x].Shutdown(); err != nil {
		t.Errorf("shutdown after lame duck: %v", err)
	}
	tc.start(x)
	tc.waitReady(60 * time.Second)
}

// gapAt is when the longest gap between successful writes began.
func (w *writer) gapAt() time.Time {
	var g time.Duration
	var at time.Time
	for i := 1; i < len(w.okAt); i++ {
		if d := w.okAt[i].Sub(w.okAt[i-1]); d > g {
			g, at = d, w.okAt[i-1]
		}
	}
	return at
}

// TestSystemIdentityInProcessOnly: the daemon's system-account key, which
// can step the meta leader down, does not log in over the NATS port, even
// held by someone who stole it.
func TestSystemIdentityInProcessOnly(t *testing.T) {
	cfg := testConfig(t)
	cfg.BusAuth = BusAuthEnforce
	d := startDaemon(t, cfg)
	kp, pub, err := d.sysID.key()
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(d.NATSURL(), nats.Nkey(pub, kp.Sign), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("the system identity logged in over TCP")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("system identity over TCP: %v; want an authorization violation", err)
	}
	nc, err := d.sysID.connect(d.dataPlane().(*embedded).srv)
	if err != nil {
		t.Fatalf("the system identity in process: %v", err)
	}
	defer nc.Close()
	// It may publish the meta stepdown only.
	errs := make(chan error, 1)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
	nc.Publish("$SYS.REQ.SERVER.PING", nil)
	nc.Flush()
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Errorf("publish outside its subject: %v; want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("publish outside its subject was not refused")
	}
}
