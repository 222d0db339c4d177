package store

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkKVPutGet measures one client on node n0 of a 3-node loopback
// cluster with sync_always (the daemon's default --js-sync always), against
// an R1 and an R3 bucket: put (kv.Put, acknowledged by the stream leader),
// get (leaderGet, what the store's authorization reads use) and get-direct
// (kv.Get, answered by any replica). Ops are sequential: this is latency
// seen as throughput, the shape of one HTTP request's store calls.
func BenchmarkKVPutGet(b *testing.B) { benchKVPutGet(b, true) }

// BenchmarkKVPutGetSyncInterval is the same with nats-server's default
// (fsync every 2 minutes).
func BenchmarkKVPutGetSyncInterval(b *testing.B) { benchKVPutGet(b, false) }

func benchKVPutGet(b *testing.B, syncAlways bool) {
	c := newTestCluster(b, 3, syncAlways)
	ctx := context.Background()
	js := c.js(b, 0)
	reader := &KV{js: js, nc: js.Conn()}
	value := bytes.Repeat([]byte("v"), 256)
	const keys = 1000
	for _, r := range []int{1, 3} {
		bucket := fmt.Sprintf("bench_r%d", r)
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, Replicas: r, Storage: jetstream.FileStorage})
		if err != nil {
			b.Fatal(err)
		}
		for i := range keys {
			if _, err := kv.Put(ctx, fmt.Sprintf("k%d", i), value); err != nil {
				b.Fatal(err)
			}
		}
		b.Logf("R%d leader: %s (client on n0)", r, c.streamLeader("KV_"+bucket))
		opsPerSec := func(b *testing.B) {
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		}
		b.Run(fmt.Sprintf("R%d/put", r), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := kv.Put(ctx, fmt.Sprintf("k%d", i%keys), value); err != nil {
					b.Fatal(err)
				}
			}
			opsPerSec(b)
		})
		b.Run(fmt.Sprintf("R%d/get", r), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := reader.leaderGet(ctx, bucket, fmt.Sprintf("k%d", i%keys)); err != nil {
					b.Fatal(err)
				}
			}
			opsPerSec(b)
		})
		b.Run(fmt.Sprintf("R%d/get-direct", r), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := kv.Get(ctx, fmt.Sprintf("k%d", i%keys)); err != nil {
					b.Fatal(err)
				}
			}
			opsPerSec(b)
		})
	}
}
