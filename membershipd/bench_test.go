package membershipd

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/benchutil"
	"github.com/unibus/unibus/internal/reqsign"
)

// BenchmarkSealedKeyFetch: signed GET of one's sealed room key, the hot
// path of a client joining a room, against the physical limit: every
// request costs one Ed25519 verify, measured on all cores in the same run.
// Requests are signed before the clock starts (the load generator's work,
// not the server's).
func BenchmarkSealedKeyFetch(b *testing.B) {
	cp := newControlPlane(b)
	ctx := context.Background()
	room, _, err := cp.alice.CreateRoomWithKey(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	id := cp.alice.Identity()
	path := "/v1/rooms/" + room.ID + "/keys/alice"
	base := "http://" + cp.d.HTTPAddr()
	auths := make([]string, b.N)
	for i := range auths {
		auths[i], _ = reqsign.Sign(id.Sign, id.Handle, "GET", path, nil, time.Now())
	}
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var next atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", base+path, nil)
			req.Header.Set("Authorization", auths[next.Add(1)-1])
			resp, err := httpc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	reqRate := float64(b.N) / time.Since(start).Seconds()
	b.StopTimer()

	verifyRate, err := benchutil.VerifyRate(id.SignPub(), "GET", path, auths[:min(len(auths), 1000)], 500*time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(reqRate, "req/s")
	b.ReportMetric(verifyRate, "verify/s")
	b.ReportMetric(reqRate/verifyRate, "of-limit")
}

// BenchmarkEncryptedSendReceive: one message at a time, sealed by the
// sender, through the embedded server with ACLs on, opened by the receiver.
func BenchmarkEncryptedSendReceive(b *testing.B) {
	cp := newControlPlane(b)
	ctx := context.Background()
	room, key, err := cp.alice.CreateRoomWithKey(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := cp.alice.AddMemberWithKey(ctx, room.ID, "bob"); err != nil {
		b.Fatal(err)
	}
	bobKey, _ := cp.bob.RoomKey(ctx, room.ID)
	connect := func(c *client.Client) *nats.Conn {
		nc, err := nats.Connect(cp.d.NATSURL(), c.Identity().NATSOptions()...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		return nc
	}
	bobNC, aliceNC := connect(cp.bob), connect(cp.alice)
	subject := client.Subject(room.ID, "bench")
	got := make(chan *nats.Msg, 1)
	bobNC.ChanSubscribe(subject, got)
	bobNC.Flush()
	payload := make([]byte, 128)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		aliceNC.PublishMsg(client.SealMessage(key, "alice", subject, payload))
		m := <-got
		if _, _, err := client.OpenMessage(bobKey, m); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkReconverge: a node (a real process) is SIGKILLed, the cluster
// takes 500 control-plane writes without it (members added, each a
// replicated KV write), and the node restarts on the store the kill left.
// The time measured is from the restart (process start) to the first
// moment every node answers /readyz 200 and its /healthz says converged:
// every replicated stream led and every follower current, the rollout
// gate's condition. Run with -benchtime Nx; the median is reported.
func BenchmarkReconverge(b *testing.B) {
	admin := mustIdentity(b, "alice")
	pc := newProcCluster(b, admin)
	pc.waitConverged(60 * time.Second)
	var times []time.Duration
	b.ResetTimer()
	for round := range b.N {
		b.StopTimer()
		pc.kill(2)
		w := newMemberWriter(pc.client(0, admin), fmt.Sprintf("rc%d", round), 500)
		w.start(b)
		w.finish(b)
		b.StartTimer()
		start := time.Now()
		pc.start(2)
		converged := pc.waitConverged(60 * time.Second)
		times = append(times, converged.Sub(start))
		b.StopTimer()
		if err := pc.replicasCaughtUp(2); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Milliseconds()), "median-ms")
	b.ReportMetric(float64(times[len(times)-1].Milliseconds()), "max-ms")
}
