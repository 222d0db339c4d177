package membershipd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unibus/unibus/client"
)

// The fault tests SIGKILL real membershipd processes (procCluster): a
// killed node's JetStream store is left exactly as the crash left it, and
// it must recover from that. The writes are the control plane's own: an
// admin adds members over HTTP, each one a replicated KV write (the member,
// its key index, the request's nonce) answered 201 only once it has
// quorum.

// memberWriter adds members m<prefix>-0 … through one node's control plane,
// on a few concurrent requests, and records which were acknowledged. A
// retry after a lost answer that finds the member already there (409
// exists) counts as acknowledged: the earlier attempt was stored. Every
// loop is bounded.
type memberWriter struct {
	c        *client.Client
	prefix   string
	n        int
	deadline time.Time

	mu         sync.Mutex
	acked      map[string]string // handle -> its signing key, as written
	failures   int               // attempts with no answer or a 5xx (no quorum, no leader)
	unexpected []string          // answers a write should never get
	done       chan struct{}
}

func newMemberWriter(c *client.Client, prefix string, n int) *memberWriter {
	return &memberWriter{c: c, prefix: prefix, n: n, deadline: time.Now().Add(90 * time.Second),
		acked: map[string]string{}, done: make(chan struct{})}
}

// start writes on 4 concurrent requests until all n are acknowledged or
// the deadline passes; done closes then.
func (w *memberWriter) start(t testing.TB) {
	next := make(chan int)
	go func() {
		for i := range w.n {
			next <- i
		}
		close(next)
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range next {
				w.write(t, i)
			}
		})
	}
	go func() { wg.Wait(); close(w.done) }()
}

func (w *memberWriter) write(t testing.TB, i int) {
	id, err := client.GenerateIdentity(fmt.Sprintf("m%s-%d", w.prefix, i))
	if err != nil {
		t.Error(err)
		return
	}
	m := client.Member{Handle: id.Handle, Role: "member", SignPub: id.SignPub(), AgeRecipient: id.Recipient()}
	for failed := false; time.Now().Before(w.deadline); failed = true {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := w.c.CreateMember(ctx, m)
		cancel()
		var apiErr *client.APIError
		switch {
		case err == nil, failed && errors.As(err, &apiErr) && apiErr.Code == "exists":
			w.mu.Lock()
			w.acked[m.Handle] = m.SignPub
			w.mu.Unlock()
			return
		case errors.As(err, &apiErr) && apiErr.Status < 500:
			w.mu.Lock()
			w.unexpected = append(w.unexpected, fmt.Sprintf("%s: %v", m.Handle, err))
			w.mu.Unlock()
			return
		}
		w.mu.Lock()
		w.failures++
		w.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *memberWriter) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *memberWriter) failureCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failures
}

// waitAcked waits until n writes are acknowledged.
func (w *memberWriter) waitAcked(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d acknowledged writes", n), timeout, func() bool { return w.ackedCount() >= n })
}

// finish waits for the writer and checks that it got every write
// acknowledged, with no answer a write should never get.
func (w *memberWriter) finish(t testing.TB) {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(time.Until(w.deadline) + 10*time.Second):
		t.Fatal("the writer did not finish")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, u := range w.unexpected {
		t.Errorf("unexpected answer to a write: %s", u)
	}
	if len(w.acked) != w.n {
		t.Errorf("with quorum back, every write should be acknowledged in the end: %d of %d", len(w.acked), w.n)
	}
	t.Logf("writes %d, acknowledged %d, unanswered or refused attempts %d", w.n, len(w.acked), w.failures)
}

// checkReadable reads every acknowledged member back through node i's
// control plane: each must be there, with the key that was written.
func (w *memberWriter) checkReadable(t testing.TB, pc *procCluster, i int, admin *client.Identity) {
	t.Helper()
	w.mu.Lock()
	acked := make(map[string]string, len(w.acked))
	for h, k := range w.acked {
		acked[h] = k
	}
	w.mu.Unlock()
	c := pc.client(i, admin)
	handles := make(chan string)
	var mu sync.Mutex
	var lost []string
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for h := range handles {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				m, err := c.Member(ctx, h)
				cancel()
				if err != nil || m.SignPub != acked[h] {
					mu.Lock()
					lost = append(lost, fmt.Sprintf("%s (%v)", h, err))
					mu.Unlock()
				}
			}
		})
	}
	for h := range acked {
		handles <- h
	}
	close(handles)
	wg.Wait()
	if len(lost) > 0 {
		t.Errorf("node %s: %d of %d acknowledged members lost or changed, e.g. %s",
			pc.nodes[i].name, len(lost), len(acked), strings.Join(lost[:min(len(lost), 3)], ", "))
	}
}

// checkAfterRecovery: the cluster converges, each restarted node's own
// replicas hold what their leaders hold, and every node serves every
// acknowledged write.
func checkAfterRecovery(t *testing.T, pc *procCluster, w *memberWriter, admin *client.Identity, restarted ...int) {
	t.Helper()
	pc.waitConverged(60 * time.Second)
	for _, i := range restarted {
		var err error
		waitFor(t, pc.nodes[i].name+"'s replicas to catch up", 30*time.Second, func() bool {
			err = pc.replicasCaughtUp(i)
			return err == nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	for i := range pc.nodes {
		w.checkReadable(t, pc, i, admin)
	}
}

// TestFaults runs the fault scenarios one after another on one cluster
// (forming one takes seconds of the CI budget); each starts from every node
// up and the cluster converged, and leaves it so.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault tests: a 3-process cluster, about a minute")
	}
	admin := mustIdentity(t, "alice")
	pc := newProcCluster(t, admin)
	for _, sc := range []struct {
		name string
		run  func(*testing.T, *procCluster, *client.Identity)
	}{
		{"OneNodeKilled", faultOneNodeKilled},
		{"TwoNodesKilled", faultTwoNodesKilled},
		{"StreamLeaderKilledMidWrite", faultStreamLeaderKilledMidWrite},
	} {
		t.Run(sc.name, func(t *testing.T) {
			pc := pc.on(t)
			for i := range pc.nodes {
				if !pc.running(i) { // an earlier scenario failed half-way
					pc.start(i)
				}
			}
			pc.waitConverged(60 * time.Second)
			sc.run(t, pc, admin)
		})
	}
}

// faultOneNodeKilled: a node is SIGKILLed while members are being
// written; writes go on with two of three, /readyz says what is missing,
// and the node restarts on its unclean store and catches up, with every
// acknowledged write on every node.
func faultOneNodeKilled(t *testing.T, pc *procCluster, admin *client.Identity) {
	w := newMemberWriter(pc.client(0, admin), "one", 300)
	w.start(t)
	w.waitAcked(t, 80, 60*time.Second)
	pc.kill(1)
	waitFor(t, "node 1 to report the missing follower", 20*time.Second, func() bool {
		code, reason := pc.readyz(0)
		return code == 503 && strings.Contains(reason, "followers current")
	})
	w.waitAcked(t, 180, 60*time.Second) // writes go on with two of three
	pc.restart(1)
	w.finish(t)
	checkAfterRecovery(t, pc, w, admin, 1)
}

// faultTwoNodesKilled: two nodes are SIGKILLed at once; without quorum
// no write is acknowledged, and when they return (both on unclean stores)
// writing resumes with nothing acknowledged lost.
func faultTwoNodesKilled(t *testing.T, pc *procCluster, admin *client.Identity) {
	// This scenario found a retried member create answered 409 "exists"
	// for a member never made: the leader refused the retry while the
	// timed-out first attempt was still proposed (store.inProcess), and
	// TestKVCreateWhileAWriteIsInProcess now pins it down.
	w := newMemberWriter(pc.client(0, admin), "two", 200)
	w.start(t)
	w.waitAcked(t, 60, 60*time.Second)

	pc.kill(1, 2)
	before := w.failureCount()
	waitFor(t, "writes to stall without quorum", 30*time.Second, func() bool { return w.failureCount() >= before+3 })
	stalledAt := w.ackedCount()
	time.Sleep(time.Second)
	if n := w.ackedCount() - stalledAt; n != 0 {
		t.Errorf("%d writes acknowledged without quorum", n)
	}

	pc.start(1)
	pc.start(2)
	pc.waitReady(1, 60*time.Second)
	pc.waitReady(2, 60*time.Second)
	w.finish(t)
	checkAfterRecovery(t, pc, w, admin, 1, 2)
}

// faultStreamLeaderKilledMidWrite: the leader of the members bucket's
// stream is SIGKILLed while writes to it are in flight. A new leader takes
// over, writes resume, and after the restart the old leader's replica,
// recovered from a store killed mid-append, holds exactly what the new
// leader holds; no acknowledged write is lost.
func faultStreamLeaderKilledMidWrite(t *testing.T, pc *procCluster, admin *client.Identity) {
	const stream = "KV_unibus_members"
	leader, err := pc.streamLeader(stream)
	if err != nil {
		t.Fatal(err)
	}
	via := (leader + 1) % len(pc.nodes)
	w := newMemberWriter(pc.client(via, admin), "lead", 300)
	w.start(t)
	w.waitAcked(t, 100, 60*time.Second)

	killed := time.Now()
	pc.kill(leader) // the writer's requests are in flight: no pause before
	atKill := w.ackedCount()
	w.waitAcked(t, atKill+1, 60*time.Second)
	resumed := time.Since(killed)
	newLeader, err := pc.streamLeader(stream)
	if err != nil || newLeader == leader {
		t.Fatalf("writes resumed, yet the leader of %s is %d (%v); want a node other than %d", stream, newLeader, err, leader)
	}
	w.waitAcked(t, atKill+50, 60*time.Second) // and go on with two of three
	t.Logf("%s: leader %s killed with %d writes acknowledged; %s leads; writes acknowledged again %s after the kill",
		stream, pc.nodes[leader].name, atKill, pc.nodes[newLeader].name, resumed.Round(time.Millisecond))

	pc.restart(leader)
	w.finish(t)
	checkAfterRecovery(t, pc, w, admin, leader)
}
