package rollout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The testdata are /readyz and /healthz answers recorded from a real
// three-node cluster (membershipd's TestRecordConvergenceAnswers): the meta
// leader converged, and with one of the other servers stopped.

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recorded is node's sample from a recording, as computation seq.
func recorded(t *testing.T, node, state string, seq int64) Sample {
	t.Helper()
	status := http.StatusOK
	readyz, err := filepath.Glob(filepath.Join("testdata", state+"_readyz_*.json"))
	if err != nil || len(readyz) != 1 {
		t.Fatalf("recording %s: %v %v", state, readyz, err)
	}
	fmt.Sscanf(strings.TrimSuffix(filepath.Base(readyz[0]), ".json")[len(state+"_readyz_"):], "%d", &status)
	s := judge(node, status, read(t, filepath.Base(readyz[0])), read(t, state+"_healthz_200.json"), 3)
	s.Seq = seq
	return s
}

func TestJudgeConverged(t *testing.T) {
	s := recorded(t, "n1", "converged", 1)
	if !s.ok() || !s.Ready || s.Cluster == nil || s.Cluster.FollowersCurrent != 14 {
		t.Fatalf("converged node: %+v", s)
	}
}

func TestJudgeOneServerDown(t *testing.T) {
	s := recorded(t, "n3", "one_server_down", 1)
	if s.ok() || s.Ready {
		t.Fatalf("a node with a peer down passes: %+v", s)
	}
	if want := "1 stream offline; 7 streams with 1/2 followers current"; !strings.Contains(s.Problem, want) {
		t.Errorf("problem %q; want %q", s.Problem, want)
	}
}

// judge does not take /readyz's word alone: a node that answers ready with
// a cluster block that is not converged (or a meta group of the wrong
// size) is not ok.
func TestJudgeReadsTheClusterBlock(t *testing.T) {
	health := read(t, "one_server_down_healthz_200.json")
	s := judge("n3", http.StatusOK, []byte(`{"ready":true}`), health, 3)
	if s.ok() || !strings.Contains(s.Problem, "7 streams with 1/2 followers current") {
		t.Errorf("ready but not converged: %+v", s)
	}
	s = judge("n1", http.StatusOK, read(t, "converged_readyz_200.json"), read(t, "converged_healthz_200.json"), 5)
	if s.ok() || s.Problem != "meta group expects 3 servers, the spec has 5" {
		t.Errorf("a cluster smaller than the spec: %+v", s)
	}
}

// A flapping node: the gate needs consecutive converged samples, and one
// bad sample starts the count again.
func TestStreakFlapping(t *testing.T) {
	good := func(seq int64) []Sample { return []Sample{recorded(t, "n1", "converged", seq)} }
	bad := func(seq int64) []Sample { return []Sample{recorded(t, "n1", "one_server_down", seq)} }
	var k streak
	var got []int
	for _, round := range [][]Sample{good(1), good(2), bad(3), good(4), good(4), good(5), good(6)} {
		got = append(got, k.add(round))
	}
	// good(4) twice is one computation served twice: it counts once.
	want := []int{1, 2, 0, 1, 1, 2, 3}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("streak %v; want %v", got, want)
	}
}

// Every node of a round must be fresh for the round to count.
func TestStreakWaitsForEveryNode(t *testing.T) {
	round := func(a, b int64) []Sample {
		return []Sample{recorded(t, "n1", "converged", a), recorded(t, "n2", "converged", b)}
	}
	var k streak
	var got []int
	for _, r := range [][]Sample{round(1, 1), round(2, 1), round(3, 2), round(3, 3), round(4, 4)} {
		got = append(got, k.add(r))
	}
	if want := []int{1, 1, 2, 2, 3}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("streak %v; want %v", got, want)
	}
}

// A node that does not answer: a loopback port nobody listens on.
func TestWaitNodeNotAnswering(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var rounds int
	err = Wait(context.Background(), []Node{{Name: "n2", BaseURL: "http://" + addr}}, Options{
		Samples: 3, Timeout: 500 * time.Millisecond, MinInterval: 10 * time.Millisecond,
		Progress: func(p Progress) { rounds++ },
	})
	var nc *NotConvergedError
	if !errors.As(err, &nc) || nc.Node != "n2" || !strings.HasPrefix(nc.Problem, "not answering") {
		t.Fatalf("err %v; want n2 not answering", err)
	}
	if !strings.HasPrefix(err.Error(), "n2: not answering: ") || !strings.Contains(err.Error(), " after ") {
		t.Errorf("error %q", err)
	}
	if rounds < 2 {
		t.Errorf("%d rounds in the timeout: the gate did not poll again", rounds)
	}
}

func TestProgressLine(t *testing.T) {
	p := progressOf([]Sample{recorded(t, "n3", "one_server_down", 1)}, 1500*time.Millisecond, 0, 3)
	want := "n3: 1.5s followers 7/14, slowest stream 1/2: 1 stream offline; 7 streams with 1/2 followers current (max lag 3); meta group 2/3 servers current"
	if p.String() != want {
		t.Errorf("progress\n%s\nwant\n%s", p, want)
	}
	p = progressOf([]Sample{recorded(t, "n1", "converged", 1)}, 2*time.Second, 2, 3)
	if want := "n1: 2s followers 14/14, slowest stream 2/2, converged 2/3 samples"; p.String() != want {
		t.Errorf("progress %q; want %q", p, want)
	}
}
