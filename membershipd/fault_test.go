package membershipd

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// faultPublisher publishes msgs numbered messages to an R3 stream through
// one node, each with a Nats-Msg-Id so a retry after a lost ack cannot store
// a duplicate, and records which were acknowledged. Every loop is bounded.
type faultPublisher struct {
	js       jetstream.JetStream
	subject  string
	msgs     int
	deadline time.Time

	mu       sync.Mutex
	acked    map[int]uint64 // message number -> stream sequence
	failures int            // attempts that got no ack (timeout, no quorum)
}

func (p *faultPublisher) run(progress chan<- int) {
	for i := range p.msgs {
		for attempt := 0; time.Now().Before(p.deadline); attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			id := fmt.Sprintf("msg-%d", i)
			ack, err := p.js.Publish(ctx, p.subject, []byte(id), jetstream.WithMsgID(id))
			cancel()
			if err == nil {
				p.mu.Lock()
				p.acked[i] = ack.Sequence
				p.mu.Unlock()
				break
			}
			p.mu.Lock()
			p.failures++
			p.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
		select {
		case progress <- i:
		default:
		}
	}
	close(progress)
}

// checkStream reads the whole stream back and checks that every
// acknowledged message is there with its content, and nothing twice.
func checkStream(t *testing.T, js jetstream.JetStream, stream string, p *faultPublisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]uint64{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("read seq %d: %v", seq, err)
		}
		if prev, dup := seen[string(m.Data)]; dup {
			t.Errorf("%s stored twice: seq %d and %d", m.Data, prev, seq)
		}
		seen[string(m.Data)] = seq
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lost := 0
	for i, seq := range p.acked {
		id := fmt.Sprintf("msg-%d", i)
		if got, ok := seen[id]; !ok || got != seq {
			lost++
			if lost < 5 {
				t.Errorf("acknowledged %s (seq %d) is missing or moved (found at %d)", id, seq, got)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged messages lost", lost)
	}
	t.Logf("published %d, acknowledged %d, unacknowledged attempts %d, stored %d, lost 0 of the acknowledged: %v, duplicates: %d",
		p.msgs, len(p.acked), p.failures, len(seen), lost == 0, int(info.State.Msgs)-len(seen))
}

// faultSetup makes the cluster and an R3 stream, and a publisher through
// node 1's own connection (node 1 stays up in both fault tests).
func faultSetup(t *testing.T, msgs int) (*testCluster, jetstream.JetStream, *faultPublisher) {
	tc := newTestCluster(t, func(_ int, cfg *Config) { cfg.ShutdownTimeout = 5 * time.Second })
	tc.waitReady(60 * time.Second)
	js, err := jetstream.New(tc.nodes[0].dataPlane().conn())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FAULT", Subjects: []string{"fault.>"}, Replicas: 3, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	tc.waitReady(30 * time.Second)
	p := &faultPublisher{js: js, subject: "fault.data", msgs: msgs, deadline: time.Now().Add(90 * time.Second), acked: map[int]uint64{}}
	return tc, js, p
}

// TestFaultOneNodeKilled: a node is killed hard mid-stream and restarted;
// publishing goes on with quorum, /readyz says what is missing, the node
// catches up, and every acknowledged message is there once.
func TestFaultOneNodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: several seconds")
	}
	tc, js, p := faultSetup(t, 1500)
	progress := make(chan int, 1)
	done := make(chan struct{})
	go func() { p.run(progress); close(done) }()
	waitProgress(t, progress, 300)

	tc.kill(1)
	waitFor(t, "node 1 to report the missing follower", 20*time.Second, func() bool {
		code, reason := tc.readyzReason(0)
		return code == 503 && strings.Contains(reason, "followers current")
	})
	waitProgress(t, progress, 800) // writes go on with two of three
	tc.start(1)
	<-done
	tc.waitReady(60 * time.Second)
	if len(p.acked) != p.msgs {
		t.Errorf("with quorum, every message should be acknowledged in the end: %d of %d", len(p.acked), p.msgs)
	}
	checkStream(t, js, "FAULT", p)
}

// TestFaultTwoNodesKilled: two nodes die at once; the stream stalls
// without quorum (publishes get no ack), then recovers when they return,
// with nothing acknowledged lost.
func TestFaultTwoNodesKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: several seconds")
	}
	tc, js, p := faultSetup(t, 600)
	progress := make(chan int, 1)
	done := make(chan struct{})
	go func() { p.run(progress); close(done) }()
	waitProgress(t, progress, 200)

	var wg sync.WaitGroup
	for _, i := range []int{1, 2} {
		wg.Go(func() { tc.nodes[i].crash() })
	}
	wg.Wait()
	tc.nodes[1], tc.nodes[2] = nil, nil
	p.mu.Lock()
	before := p.failures
	p.mu.Unlock()
	waitFor(t, "publishes to stall without quorum", 30*time.Second, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.failures >= before+3
	})
	p.mu.Lock()
	stalledAt := len(p.acked)
	p.mu.Unlock()
	time.Sleep(time.Second) // still nothing acknowledged without quorum
	p.mu.Lock()
	if len(p.acked) != stalledAt {
		t.Errorf("acknowledged %d messages without quorum", len(p.acked)-stalledAt)
	}
	p.mu.Unlock()

	tc.start(1)
	tc.start(2)
	<-done
	tc.waitReady(60 * time.Second)
	if len(p.acked) != p.msgs {
		t.Errorf("after recovery every message should be acknowledged: %d of %d", len(p.acked), p.msgs)
	}
	checkStream(t, js, "FAULT", p)
}

func waitProgress(t *testing.T, progress <-chan int, n int) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case i, ok := <-progress:
			if !ok || i >= n {
				return
			}
		case <-deadline:
			t.Fatalf("publisher did not reach message %d", n)
		}
	}
}
