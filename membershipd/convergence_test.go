package membershipd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/unibus/unibus/internal/converge"
	"github.com/unibus/unibus/rollout"
)

// r1Stream is an R1 stream the tests add beside the daemon's own: it lives
// on one server and is down while that server is.
const r1Stream = "CONVERGE_R1"

// convergenceCluster is a converged three-node cluster with r1Stream, and
// the index of the node that holds it.
func convergenceCluster(t *testing.T) (*testCluster, int) {
	t.Helper()
	tc := newTestCluster(t, nil)
	tc.waitReady(60 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js := tc.nodes[0].dataPlane().(*embedded).js
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: r1Stream, Subjects: []string{"converge.r1"}, Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	var host int
	waitFor(t, "the R1 stream has a leader", 10*time.Second, func() bool {
		info, err := js.Stream(ctx, r1Stream)
		if err != nil {
			return false
		}
		si, err := info.Info(ctx)
		if err != nil || si.Cluster == nil || si.Cluster.Leader == "" {
			return false
		}
		for i, cfg := range tc.cfgs {
			if cfg.NodeName == si.Cluster.Leader {
				host = i
				return true
			}
		}
		return false
	})
	waitFor(t, "converged with the R1 stream", 30*time.Second, func() bool { return tc.facts(0).Converged })
	return tc, host
}

func (tc *testCluster) embedded(i int) *embedded { return tc.nodes[i].dataPlane().(*embedded) }

func (tc *testCluster) facts(i int) converge.Facts { return converge.Decide(tc.answers(i)) }

func (tc *testCluster) answers(i int) converge.Input {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	e := tc.embedded(i)
	return gatherAnswers(ctx, e.srv, e.nc, e.expectServers)
}

// metaLeader is the index of the running node that leads the meta group,
// or -1.
func (tc *testCluster) metaLeader() int {
	for i, d := range tc.nodes {
		if d == nil {
			continue
		}
		if jsz, err := tc.embedded(i).srv.Jsz(nil); err == nil && jsz.Meta != nil && jsz.Meta.Leader == tc.cfgs[i].NodeName {
			return i
		}
	}
	return -1
}

// TestConvergenceFactsNodeDown: with one of three servers stopped, the
// facts of a survivor say not converged, with the counts of what the stopped
// server took with it; with it back, converged.
func TestConvergenceFactsNodeDown(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: several seconds")
	}
	tc, host := convergenceCluster(t)
	start := time.Now()
	f := tc.facts(0)
	t.Logf("converged, judged in %s: %+v", time.Since(start).Round(time.Microsecond), f)
	if f.ReplicatedStreams == 0 || f.FollowersCurrent != f.FollowersExpected || f.MetaServersCurrent != 3 || !f.HealthzOK || f.StreamsConverged != f.Streams {
		t.Fatalf("converged cluster: %+v", f)
	}
	replicated := f.ReplicatedStreams

	tc.halt(host)
	survivor := (host + 1) % 3
	waitFor(t, "a meta leader among the survivors", 30*time.Second, func() bool { return tc.metaLeader() >= 0 })
	var down converge.Facts
	waitFor(t, "the survivors see the server gone", 30*time.Second, func() bool {
		down = tc.facts(tc.metaLeader())
		return down.Offline == 1 && down.MetaServersCurrent == 2 && down.FollowersCurrent == replicated
	})
	t.Logf("one server down: %q %+v", down.Reason, down)
	if down.Converged || down.Streams != replicated+1 || down.ReplicatedStreams != replicated || down.FollowersExpected != 2*replicated ||
		down.MetaServersExpected != 3 || down.Slowest.FollowersCurrent != 1 || down.Slowest.FollowersExpected != 2 {
		t.Errorf("one server down: %+v", down)
	}
	if want := "1 stream offline"; !strings.Contains(down.Reason, want) {
		t.Errorf("reason %q does not say %q", down.Reason, want)
	}
	if h := convergence(context.Background(), tc.embedded(survivor).srv, tc.embedded(survivor).nc, 3); h.Converged || h.Error != reasonNotConverged {
		t.Errorf("the survivor's cluster block: converged %v, code %q", h.Converged, h.Error)
	}

	tc.start(host)
	waitFor(t, "converged again", 60*time.Second, func() bool {
		for i := range tc.nodes {
			if !tc.facts(i).Converged {
				return false
			}
		}
		return true
	})
}

// TestRecordConvergenceAnswers writes the raw answers the decision's unit
// tests read, from a real cluster: UNIBUS_RECORD_CONVERGENCE=1 go test -run
// TestRecordConvergenceAnswers ./membershipd.
func TestRecordConvergenceAnswers(t *testing.T) {
	if os.Getenv("UNIBUS_RECORD_CONVERGENCE") == "" {
		t.Skip("set UNIBUS_RECORD_CONVERGENCE=1 to record internal/converge/testdata")
	}
	dir := filepath.Join("..", "internal", "converge", "testdata")
	record := func(name string, in converge.Input) {
		b, err := json.MarshalIndent(in, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %+v", name, converge.Decide(in))
	}
	// The gate's unit tests read a node's /readyz and /healthz answers.
	gateDir := filepath.Join("..", "rollout", "testdata")
	recordHTTP := func(name string, d *Daemon) {
		for _, path := range []string{"/readyz", "/healthz"} {
			resp, err := http.Get(endpoint(d, path))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			file := fmt.Sprintf("%s%s_%d.json", name, strings.ReplaceAll(path, "/", "_"), resp.StatusCode)
			if err := os.WriteFile(filepath.Join(gateDir, file), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tc, host := convergenceCluster(t)
	leader := tc.metaLeader()
	record("converged_meta_leader.json", tc.answers(leader))
	record("converged_follower.json", tc.answers((leader+1)%3))
	tc.waitReady(30 * time.Second)
	recordHTTP("converged", tc.nodes[leader])

	tc.halt(host)
	waitFor(t, "a meta leader among the survivors", 30*time.Second, func() bool { return tc.metaLeader() >= 0 })
	waitFor(t, "the survivors see the server gone", 30*time.Second, func() bool {
		f := tc.facts(tc.metaLeader())
		return f.Offline == 1 && f.MetaServersCurrent == 2
	})
	record("one_server_down.json", tc.answers(tc.metaLeader()))
	ml := tc.nodes[tc.metaLeader()]
	waitFor(t, "the meta leader's /readyz says not converged", 30*time.Second, func() bool {
		return getJSONQuiet(endpoint(ml, "/readyz")) == http.StatusServiceUnavailable
	})
	recordHTTP("one_server_down", ml)
}

// TestGateOnRealCluster: the operator's gate passes on a converged
// cluster, times out naming the node and the condition with a server
// stopped, and passes again once it is back.
func TestGateOnRealCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: several seconds")
	}
	tc, host := convergenceCluster(t)
	nodes := func() []rollout.Node {
		var ns []rollout.Node
		for i, d := range tc.nodes {
			if d != nil {
				ns = append(ns, rollout.Node{Name: tc.cfgs[i].NodeName, BaseURL: "http://" + d.HTTPAddr()})
			}
		}
		return ns
	}
	var lines []string
	opt := rollout.Options{Samples: 3, Timeout: time.Minute, ExpectServers: 3, Progress: func(p rollout.Progress) { lines = append(lines, p.String()) }}
	if err := rollout.Wait(context.Background(), nodes(), opt); err != nil {
		t.Fatalf("converged cluster: %v", err)
	}
	t.Logf("converged: %d rounds, last %q", len(lines), lines[len(lines)-1])

	tc.halt(host)
	opt.Timeout = 5 * time.Second
	err := rollout.Wait(context.Background(), nodes(), opt)
	var nc *rollout.NotConvergedError
	if !errors.As(err, &nc) {
		t.Fatalf("one server down: %v; want a NotConvergedError", err)
	}
	t.Logf("one server down: %v", err)
	if !strings.Contains(nc.Problem, "streams with 1/2 followers current") && !strings.Contains(nc.Problem, "meta group 2/3 servers current") {
		t.Errorf("problem %q names neither the followers nor the meta group", nc.Problem)
	}
	if nc.Node == tc.cfgs[host].NodeName || nc.Node == "" {
		t.Errorf("error names node %q, which was not polled", nc.Node)
	}

	tc.start(host)
	opt.Timeout, lines = 2*time.Minute, nil
	if err := rollout.Wait(context.Background(), nodes(), opt); err != nil {
		t.Fatalf("server back: %v", err)
	}
	t.Logf("server back: %d rounds, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
}
