package membershipd

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hammer sends GETs of /healthz and /readyz to d from n goroutines for dur,
// and returns how many were answered and every distinct body.
func hammer(t *testing.T, d *Daemon, n int, dur time.Duration) (int64, []string) {
	t.Helper()
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}, Timeout: 10 * time.Second}
	var answered atomic.Int64
	var mu sync.Mutex
	bodies := map[string]bool{}
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i := range n {
		path := []string{"/healthz", "/readyz"}[i%2]
		wg.Go(func() {
			for time.Now().Before(deadline) {
				resp, err := httpc.Get(endpoint(d, path))
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				answered.Add(1)
				// uptime_seconds and sample differ from body to body; the rest is
				// what the test reads.
				var v map[string]any
				json.Unmarshal(b, &v)
				delete(v, "uptime_seconds")
				delete(v, "sample")
				norm, _ := json.Marshal(v)
				mu.Lock()
				bodies[string(norm)] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	var out []string
	for b := range bodies {
		out = append(out, b)
	}
	return answered.Load(), out
}

// TestHealthzCannotLoadTheCluster: however many requests /healthz and
// /readyz get, a node computes its cluster state (every stream's state
// from its leader, the KV replicas) at most about once a second; and while
// the cluster is not converged, or has lost quorum, neither endpoint names
// a bucket, stream or subject.
func TestHealthzCannotLoadTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: several seconds")
	}
	tc := newTestCluster(t, nil)
	tc.waitReady(60 * time.Second)
	d := tc.nodes[0]

	runs0, start := d.health.runs.Load(), time.Now()
	answered, _ := hammer(t, d, 16, 3*time.Second)
	runs, elapsed := d.health.runs.Load()-runs0, time.Since(start)
	t.Logf("%d requests in %s, %d computations of the cluster state", answered, elapsed.Round(time.Millisecond), runs)
	// Each computation starts at least a second after the previous one
	// ended.
	if limit := int64(elapsed/time.Second) + 1; runs > limit {
		t.Errorf("%d computations in %s under load; want at most %d", runs, elapsed, limit)
	}
	if answered < 10*runs {
		t.Errorf("only %d requests answered for %d computations: the load did not happen", answered, runs)
	}

	leaks := []string{"KV_", "OBJ_", "unibus_", "$JS", "$KV", "$O.", "unibus.", "nats://"}
	// checkBodies hammers d until one body holds all of want, checking
	// every body on the way.
	checkBodies := func(state string, want ...string) {
		t.Helper()
		var seen bool
		waitFor(t, state, 30*time.Second, func() bool {
			_, bodies := hammer(t, d, 4, 1500*time.Millisecond)
			for _, b := range bodies {
				for _, leak := range leaks {
					if strings.Contains(b, leak) {
						t.Errorf("%s: a public body names %q: %s", state, leak, b)
					}
				}
				all := true
				for _, w := range want {
					all = all && strings.Contains(b, w)
				}
				seen = seen || all
			}
			return seen
		})
	}
	// One node down: followers are not current.
	tc.halt(1)
	checkBodies("not converged, one node down", `"not_ready","error":"not_converged: `, `streams with 1/2 followers current`)
	// Two down: streams lose their leaders, then the meta leader goes and
	// JetStream stops answering; the reason stays quorum_lost throughout.
	tc.halt(2)
	checkBodies("quorum lost, two nodes down", `"reason":"quorum_lost"`)
	checkBodies("meta leader lost, two nodes down", `"meta_leader_known":false`, `"reason":"quorum_lost"`)
}
