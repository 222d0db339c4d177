package membershipd

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/reqsign"
	"github.com/unibus/unibus/membershipd/store"
)

// TestNoAdminInjectedIntoLiveCluster: once a cluster has an admin, no node
// imports its local state again, so an admin written into one node's state
// dir (by bootstrap, which refuses, or by writing the SQLite file) never
// reaches the cluster. Then, with two of three nodes SIGKILLed, the
// survivor answers requests that need the replicated store with 503
// unavailable and says degraded.
func TestNoAdminInjectedIntoLiveCluster(t *testing.T) {
	ctx := context.Background()
	alice := mustIdentity(t, "alice")
	pc := newProcCluster(t, alice)
	if _, err := pc.client(1, alice).Member(ctx, "alice"); err != nil {
		t.Fatalf("the bootstrapped admin at first formation: %v", err)
	}

	// Node 3 is down; bootstrap against its state dir is refused.
	pc.kill(2)
	mallory := mustIdentity(t, "mallory")
	_, err := Bootstrap(ctx, pc.nodes[2].stateDir, "mallory", mallory.SignPub(), mallory.Recipient(), selfVouch(t, mallory))
	if err == nil || !strings.Contains(err.Error(), `is a node of cluster "test"`) {
		t.Fatalf("bootstrap on a cluster node's state dir: %v", err)
	}
	// Written straight into its SQLite file, the admin is not imported
	// when the node comes back.
	st, err := store.OpenSQLite(ctx, pc.nodes[2].stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateMember(ctx, store.Member{Handle: "mallory", Role: store.RoleAdmin, SignPub: mallory.SignPub(), AgeRecipient: mallory.Recipient(), Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	pc.restart(2)
	for i := range pc.nodes {
		if _, err := pc.client(i, alice).Member(ctx, "mallory"); err == nil {
			t.Fatalf("node %d: mallory, written into one node's state dir, is a member of the cluster", i+1)
		}
	}
	eve := mustIdentity(t, "eve")
	_, err = pc.client(2, mallory).CreateMember(ctx, client.Member{Handle: "eve", Role: "admin", SignPub: eve.SignPub(), AgeRecipient: eve.Recipient()})
	if code, _ := apiStatus(err); code != http.StatusUnauthorized {
		t.Fatalf("mallory adds an admin through the node she was written into: %v (want 401)", err)
	}

	// Two of three nodes die: no quorum. The survivor says so and answers
	// 503 with Retry-After, never 500.
	pc.kill(0, 1)
	waitFor(t, "the survivor to say degraded", 30*time.Second, func() bool {
		h, err := pc.health(2)
		return err == nil && h.Status == "degraded"
	})
	req, err := http.NewRequest("GET", pc.url(2, "/v1/rooms"), nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := reqsign.Sign(alice.Sign, alice.Handle, "GET", "/v1/rooms", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e apiError
	json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || e.Code != "unavailable" {
		t.Fatalf("a request needing the store without quorum: %d %+v, Retry-After %q; want 503 unavailable with Retry-After", resp.StatusCode, e, resp.Header.Get("Retry-After"))
	}
}
