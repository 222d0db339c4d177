package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/unibus/unibus/internal/ids"
)

// TestKVCreateWhileAWriteIsInProcess: a create whose first attempt timed
// out during quorum loss is still proposed on the stream leader, and the
// leader refuses a second create of the same key while it is (nats-server
// error 10164, which nats.go reports as ErrKeyExists). That proposal may
// commit or be dropped at the next leader change, so the refusal is no
// proof the key exists: answering "exists" made a retried member create
// report success for a member that was never made (seen in
// TestFaults/TwoNodesKilled). Each retry here must end unavailable, not
// exists or replay.
func TestKVCreateWhileAWriteIsInProcess(t *testing.T) {
	c := newTestCluster(t, 3, false)
	ctx := testCtx(t)
	js := c.js(t, 0)
	s := openTestKV(t, js, KVOptions{Replicas: 3})
	owner := member("owner", RoleAdmin)
	must(t, "owner", s.CreateMember(ctx, owner))

	// n0 leads every bucket, then loses both followers: it keeps leading
	// (for lostQuorumInterval) but can commit nothing.
	for _, b := range kvBuckets {
		c.moveLeader(t, js.Conn(), "KV_"+b, "n0")
	}
	c.servers[1].Shutdown()
	c.servers[2].Shutdown()

	room := ids.NewRoomID()
	for _, op := range []struct {
		name    string
		do      func(context.Context) error
		refusal error
	}{
		{"CreateMember", func(ctx context.Context) error { return s.CreateMember(ctx, member("late", RoleMember)) }, ErrExists},
		{"CreateRoom", func(ctx context.Context) error {
			return s.CreateRoom(ctx, Room{ID: room, Name: "r", Owner: owner.Handle, KeyEpoch: 1})
		}, ErrExists},
		{"UseNonce", func(ctx context.Context) error {
			return s.UseNonce(ctx, "nonce-1", time.Now().Add(time.Minute))
		}, ErrReplay},
	} {
		t.Run(op.name, func(t *testing.T) {
			first, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			err := op.do(first)
			cancel()
			if err == nil {
				t.Fatal("first attempt succeeded without a quorum")
			}
			retry, cancel := context.WithTimeout(ctx, 2*time.Second)
			err = op.do(retry)
			cancel()
			if errors.Is(err, op.refusal) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("retry while the first attempt is in process: %v; want a timeout (retry later), not %v", err, op.refusal)
			}
		})
	}
}

// moveLeader makes server the leader of stream, asking the current leader
// to step down in its favour.
func (c *testCluster) moveLeader(tb testing.TB, nc *nats.Conn, stream, server string) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for c.streamLeader(stream) != server {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: leader %q, could not move it to %s", stream, c.streamLeader(stream), server)
		}
		body, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": server}})
		if _, err := nc.Request(fmt.Sprintf("$JS.API.STREAM.LEADER.STEPDOWN.%s", stream), body, 2*time.Second); err != nil {
			tb.Logf("%s: stepdown: %v", stream, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
