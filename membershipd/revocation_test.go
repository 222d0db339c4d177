package membershipd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/membershipd/store"
)

// TestRevocationFailsClosed: a member removed from a room is cut off on
// every node of a cluster even when the first bus update of every node
// fails, and a node whose updates keep failing says so in /readyz until
// the update lands.
func TestRevocationFailsClosed(t *testing.T) {
	alice := mustIdentity(t, "alice")
	tc := newClusterWithAdmin(t, alice)
	ctx := context.Background()
	admin := client.New("http://"+tc.nodes[0].HTTPAddr(), alice)
	bob := addMemberOn(t, admin, "bob")
	room, err := admin.CreateRoom(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddRoomMember(ctx, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	carol := addMemberOn(t, admin, "carol") // a member, not in the room
	subject := client.Subject(room.ID, "chat")
	for i := range tc.nodes {
		waitFor(t, fmt.Sprintf("bob's room on node %d", i+1), 20*time.Second, func() bool {
			return busAllows(tc.nodes[i].NATSURL(), bob, subject)
		})
		// Carol is known on every node (she connects) and still kept out
		// of the room on each, the remote ones included.
		waitKnown(t, tc.nodes[i].NATSURL(), carol)
		if busAllows(tc.nodes[i].NATSURL(), carol, subject) {
			t.Errorf("node %d lets carol, not in the room, subscribe to it", i+1)
		}
	}

	// Bob on every node, subscribed to the room: a revocation reaches him
	// as the server pruning that subscription.
	var mu sync.Mutex
	cutAt := map[int]time.Time{}
	for i := range tc.nodes {
		nc, err := nats.Connect(tc.nodes[i].NATSURL(), append(bob.NATSOptions(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "Permissions Violation") {
				mu.Lock()
				if _, ok := cutAt[i]; !ok {
					cutAt[i] = time.Now()
				}
				mu.Unlock()
			}
		}))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if _, err := nc.SubscribeSync(subject); err != nil || nc.Flush() != nil {
			t.Fatalf("bob subscribes on node %d: %v", i+1, err)
		}
	}

	// The first update on every node fails.
	var fmu sync.Mutex
	failed := map[string]bool{}
	fault := func(node string) error {
		fmu.Lock()
		defer fmu.Unlock()
		if !failed[node] {
			failed[node] = true
			return errors.New("injected: first bus update fails")
		}
		return nil
	}
	busReloadFault.Store(&fault)
	t.Cleanup(func() { busReloadFault.Store(nil) })

	if _, err := admin.RemoveRoomMember(ctx, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	waitFor(t, "bob cut off on every node", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(cutAt) == len(tc.nodes)
	})
	var farthest time.Duration
	for i, at := range cutAt {
		d := at.Sub(removed)
		t.Logf("node %d: bob cut off %s after the removal's 200", i+1, d.Round(time.Millisecond))
		farthest = max(farthest, d)
	}
	t.Logf("farthest node: %s (every node's first update failed)", farthest.Round(time.Millisecond))
	fmu.Lock()
	if len(failed) != len(tc.nodes) {
		t.Errorf("the fault hit %d nodes, want %d: the test did not prove a retry everywhere", len(failed), len(tc.nodes))
	}
	fmu.Unlock()
	for i := range tc.nodes {
		if busAllows(tc.nodes[i].NATSURL(), bob, subject) {
			t.Errorf("node %d still lets bob subscribe to the room", i+1)
		}
	}

	// Node 1's updates keep failing: /readyz says so, and once they land
	// it is ready again and the change is in force.
	var stuck sync.Once
	release := make(chan struct{})
	hold := func(node string) error {
		if node != tc.cfgs[0].NodeName {
			return nil
		}
		select {
		case <-release:
			return nil
		default:
			stuck.Do(func() {})
			return errors.New("injected: bus updates fail")
		}
	}
	busReloadFault.Store(&hold)
	if _, err := admin.AddRoomMember(ctx, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node 1 to report the pending update", 10*time.Second, func() bool {
		code, reason := tc.readyzReason(0)
		return code == 503 && strings.Contains(reason, "bus_update_pending")
	})
	if busAllows(tc.nodes[0].NATSURL(), bob, subject) {
		t.Fatal("node 1 applied the change while every update failed")
	}
	close(release)
	waitFor(t, "node 1 ready with the change applied", 10*time.Second, func() bool {
		code, _ := tc.readyzReason(0)
		return code == 200 && busAllows(tc.nodes[0].NATSURL(), bob, subject)
	})
}

// TestMembershipWatchSurvivesLostConsumer: the consumers behind every
// node's membership watch are deleted (as a stream leader change or a
// server restart can lose them), and a change made right after still
// reaches the bus on every node: the watch comes back from where it was,
// and nothing in the gap is missed.
func TestMembershipWatchSurvivesLostConsumer(t *testing.T) {
	alice := mustIdentity(t, "alice")
	tc := newClusterWithAdmin(t, alice)
	ctx := context.Background()
	admin := client.New("http://"+tc.nodes[0].HTTPAddr(), alice)
	bob := addMemberOn(t, admin, "bob")
	room, err := admin.CreateRoom(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	for i := range tc.nodes {
		waitKnown(t, tc.nodes[i].NATSURL(), bob)
	}

	js, err := jetstream.New(tc.nodes[2].dataPlane().conn())
	if err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for _, bucket := range []string{store.BucketMembers, store.BucketRooms} {
		st, err := js.Stream(ctx, "KV_"+bucket)
		if err != nil {
			t.Fatal(err)
		}
		names := st.ConsumerNames(ctx)
		for name := range names.Name() {
			if err := st.DeleteConsumer(ctx, name); err == nil {
				deleted++
			}
		}
	}
	if deleted < 2*len(tc.nodes) {
		t.Fatalf("deleted %d watch consumers; want at least %d (two buckets on each node)", deleted, 2*len(tc.nodes))
	}
	if _, err := admin.AddRoomMember(ctx, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	subject := client.Subject(room.ID, "chat")
	for i := range tc.nodes {
		waitFor(t, fmt.Sprintf("bob's new room on node %d after the watch lost its consumer", i+1), 60*time.Second, func() bool {
			return busAllows(tc.nodes[i].NATSURL(), bob, subject)
		})
	}
}

// newClusterWithAdmin is a ready three-node cluster whose first admin is
// admin: every node has it as --first-admin, and the first to find no
// admin creates it.
func newClusterWithAdmin(t *testing.T, admin *client.Identity) *testCluster {
	t.Helper()
	firstAdmin := writeFirstAdmin(t, admin)
	tc := newTestCluster(t, func(i int, cfg *Config) { cfg.FirstAdminFile = firstAdmin })
	tc.waitReady(60 * time.Second)
	return tc
}

// addMemberOn has admin add a plain member named handle.
func addMemberOn(t *testing.T, admin *client.Client, handle string) *client.Identity {
	t.Helper()
	id := mustIdentity(t, handle)
	if _, err := admin.CreateMember(context.Background(), client.Member{Handle: handle, Role: "member", SignPub: id.SignPub(), AgeRecipient: id.Recipient()}); err != nil {
		t.Fatal(err)
	}
	return id
}

// waitKnown waits until id can log into the node at url: its user has
// reached that node.
func waitKnown(t *testing.T, url string, id *client.Identity) {
	t.Helper()
	waitFor(t, id.Handle+" known on "+url, 20*time.Second, func() bool {
		nc, err := nats.Connect(url, id.NATSOptions()...)
		if err == nil {
			nc.Close()
		}
		return err == nil
	})
}
