// Package rollout is the operator's side of a rolling change: the gate that
// waits, after a node restarts, until the cluster has converged again.
//
// The gate reads each node's /readyz and /healthz (through whatever the
// caller's base URL and HTTP client reach, e.g. an SSH tunnel to the node's
// loopback) and requires several consecutive converged samples, not one.
// The counts it judges are membershipd's cluster block, which
// [converge.Decide] computes on the node from the raw JetStream answers.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/unibus/unibus/internal/converge"
)

// Node is one node's health endpoints.
type Node struct {
	Name    string
	BaseURL string       // e.g. http://127.0.0.1:18010 through a tunnel
	Client  *http.Client // nil: http.DefaultClient
}

// Options bound a wait.
type Options struct {
	// Samples is how many consecutive converged samples pass the gate.
	Samples int
	// Timeout is how long to wait for them.
	Timeout time.Duration
	// ExpectServers is how many servers the spec has; zero takes the
	// meta group's own count.
	ExpectServers int
	// Progress, when set, is called after every round of samples.
	Progress func(Progress)
	// MinInterval and MaxInterval bound the backoff between rounds;
	// zero means 100ms and 2s.
	MinInterval, MaxInterval time.Duration
	// RequestTimeout bounds one HTTP request; zero means 10s (a node
	// may take up to 6s to compute its state when a stream's leader is
	// gone).
	RequestTimeout time.Duration
}

// Progress is the state of a wait, for a live progress line.
type Progress struct {
	Node    string // the node the line is about: the first one not ok, else the first
	Elapsed time.Duration
	// Streak of Samples consecutive converged samples seen.
	Streak, Samples int
	// Followers current/expected summed over the streams of the node's
	// cluster block, and the slowest stream's own counts.
	FollowersCurrent, FollowersExpected int
	Slowest                             converge.Slowest
	Problem                             string // empty when the node is ok
}

// String is the progress line.
func (p Progress) String() string {
	line := fmt.Sprintf("%s: %s followers %d/%d, slowest stream %d/%d",
		p.Node, p.Elapsed.Round(100*time.Millisecond), p.FollowersCurrent, p.FollowersExpected,
		p.Slowest.FollowersCurrent, p.Slowest.FollowersExpected)
	if p.Problem != "" {
		return line + ": " + p.Problem
	}
	return line + fmt.Sprintf(", converged %d/%d samples", p.Streak, p.Samples)
}

// NotConvergedError is a wait that timed out.
type NotConvergedError struct {
	Node    string
	Problem string
	After   time.Duration
}

func (e *NotConvergedError) Error() string {
	return fmt.Sprintf("%s: %s after %s", e.Node, e.Problem, e.After.Round(time.Second))
}

// Wait returns nil once every node in nodes answers ready and converged on
// opt.Samples consecutive samples, and a *NotConvergedError naming the
// node and the condition that failed if opt.Timeout passes first. Pass the
// restarted node first: the progress line is about it while all is well.
func Wait(ctx context.Context, nodes []Node, opt Options) error {
	if len(nodes) == 0 {
		return errors.New("rollout gate: no nodes to wait for")
	}
	if opt.Samples < 1 {
		opt.Samples = 1
	}
	minI, maxI := opt.MinInterval, opt.MaxInterval
	if minI <= 0 {
		minI = 100 * time.Millisecond
	}
	if maxI < minI {
		maxI = max(minI, 2*time.Second)
	}
	reqTimeout := opt.RequestTimeout
	if reqTimeout <= 0 {
		reqTimeout = 10 * time.Second
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	var k streak
	interval := minI
	lastProblem := ""
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := context.Cause(ctx); !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return &NotConvergedError{Node: k.lastNode(nodes), Problem: k.lastProblem(lastProblem), After: time.Since(start)}
		case <-timer.C:
		}
		round := make([]Sample, len(nodes))
		for i, n := range nodes {
			round[i] = poll(ctx, n, reqTimeout, opt.ExpectServers)
		}
		if ctx.Err() != nil {
			// A request cut short by the deadline says nothing of the node.
			continue
		}
		before := k.n
		n := k.add(round)
		p := progressOf(round, time.Since(start), n, opt.Samples)
		k.last = p
		if opt.Progress != nil {
			opt.Progress(p)
		}
		if n >= opt.Samples {
			return nil
		}
		// Poll fast while things move (a new sample counted, the problem
		// changed); back off while they stand still.
		if n != before || p.Problem != lastProblem {
			interval = minI
		} else {
			interval = min(2*interval, maxI)
		}
		lastProblem = p.Problem
		timer.Reset(interval)
	}
}

func progressOf(round []Sample, elapsed time.Duration, streak, samples int) Progress {
	at := round[0]
	for _, s := range round {
		if !s.ok() {
			at = s
			break
		}
	}
	p := Progress{Node: at.Node, Elapsed: elapsed, Streak: streak, Samples: samples, Problem: at.Problem}
	if c := at.Cluster; c != nil {
		p.FollowersCurrent, p.FollowersExpected, p.Slowest = c.FollowersCurrent, c.FollowersExpected, c.Slowest
	}
	return p
}

// poll takes one sample of node n.
func poll(ctx context.Context, n Node, timeout time.Duration, expectServers int) Sample {
	readyStatus, readyBody, healthBody, err := ask(ctx, n, timeout)
	if err != nil {
		return Sample{Node: n.Name, Problem: "not answering: " + err.Error()}
	}
	return judge(n.Name, readyStatus, readyBody, healthBody, expectServers)
}

// ask reads node n's /readyz (status and body) and /healthz: what every
// sample is judged from.
func ask(ctx context.Context, n Node, timeout time.Duration) (readyStatus int, ready, health []byte, err error) {
	client := n.Client
	if client == nil {
		client = http.DefaultClient
	}
	base := strings.TrimSuffix(n.BaseURL, "/")
	if readyStatus, ready, err = get(ctx, client, base+"/readyz", timeout); err != nil {
		return 0, nil, nil, err
	}
	if _, health, err = get(ctx, client, base+"/healthz", timeout); err != nil {
		return 0, nil, nil, err
	}
	return readyStatus, ready, health, nil
}

func get(ctx context.Context, client *http.Client, url string, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// Look takes one sample of each node, for a caller that needs the state
// now (which node leads the meta group) rather than a wait.
func Look(ctx context.Context, nodes []Node, timeout time.Duration) []Sample {
	out := make([]Sample, len(nodes))
	for i, n := range nodes {
		out[i] = poll(ctx, n, timeout, 0)
	}
	return out
}
