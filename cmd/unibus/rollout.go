package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/provision"
	"github.com/unibus/unibus/rollout"
	"github.com/unibus/unibus/units"
)

// rollouter drives a cluster apply through the rollout gate: it reads each
// node's /readyz and /healthz where nodeHTTP reaches them, and moves a
// node's leaders off through its control plane before its restart.
func rollouter(ui cli.UI, spec *provision.Spec, op *client.Identity, force, moveLeaders bool) *provision.Rollouter {
	if !spec.IsCluster() {
		return nil
	}
	h := &healthNodes{spec: spec}
	opts := func(samples int) rollout.Options {
		last := ""
		return rollout.Options{
			Samples: samples, Timeout: spec.Cluster.Rollout.ConvergeTimeout, ExpectServers: len(spec.Nodes),
			Progress: func(p rollout.Progress) {
				// One line per change of what the gate sees, not per poll.
				key := fmt.Sprintf("%s %d/%d %d %s", p.Node, p.FollowersCurrent, p.FollowersExpected, p.Streak, p.Problem)
				if key != last {
					last = key
					ui.Printf("gate: %s", p)
				}
			},
		}
	}
	return &provision.Rollouter{
		Force: force,
		Converged: func(ctx context.Context) error {
			nodes, err := h.nodes("")
			if err != nil {
				return err
			}
			o := opts(1)
			o.Timeout, o.Progress = 15*time.Second, nil
			return rollout.Wait(ctx, nodes, o)
		},
		Gate: func(ctx context.Context, n *provision.Node) error {
			first := ""
			if n != nil {
				first = n.Name
			}
			nodes, err := h.nodes(first)
			if err != nil {
				return err
			}
			ctx, stop := watchServices(ctx, spec)
			defer stop()
			return rollout.Wait(ctx, nodes, opts(spec.Cluster.Rollout.Samples))
		},
		MoveLeaders: func(ctx context.Context, n *provision.Node) error {
			if !moveLeaders {
				return nil
			}
			return drain(ctx, ui, h, op, n, force)
		},
		MetaLeader: func(ctx context.Context) string {
			nodes, err := h.nodes("")
			if err != nil {
				return ""
			}
			for _, s := range rollout.Look(ctx, nodes, 5*time.Second) {
				if s.Cluster != nil && s.Cluster.MetaLeaderView {
					return s.Node
				}
			}
			return ""
		},
	}
}

// healthNodes are the spec's nodes as the gate reaches them (nodeHTTP),
// read when asked: the client CA exists only once apply issued it.
type healthNodes struct {
	spec *provision.Spec
}

// nodes lists every node, the one named first first.
func (h *healthNodes) nodes(first string) ([]rollout.Node, error) {
	var out []rollout.Node
	for i := range h.spec.Nodes {
		rn, err := nodeHTTP(h.spec, &h.spec.Nodes[i])
		if err != nil {
			return nil, err
		}
		if rn.Name == first {
			out = append([]rollout.Node{rn}, out...)
		} else {
			out = append(out, rn)
		}
	}
	return out, nil
}

// drain moves every leadership off n before its restart through the
// node's control plane, as the operator (the cluster's first admin): first
// a dry run, which refuses a restart that would leave a group below quorum
// (unless -force), then the drain itself, ending in lame duck so clients
// reconnect elsewhere before the process stops.
func drain(ctx context.Context, ui cli.UI, h *healthNodes, op *client.Identity, n *provision.Node, force bool) error {
	c, err := h.controlClient(n, op)
	if err != nil {
		return err
	}
	rep, err := c.Drain(ctx, client.DrainOptions{DryRun: true})
	var apiErr *client.APIError
	if errors.As(err, &apiErr) && (apiErr.Status == http.StatusUnauthorized || apiErr.Status == http.StatusForbidden) {
		ui.Warnf("%s: leaders not moved before the restart: the operator identity is not an admin here (%v)", n.Name, err)
		return nil
	}
	if err != nil {
		return err
	}
	if !rep.RestartSafe && !force {
		return fmt.Errorf("restarting %s now would leave %d group(s) below quorum (is another node down?); pass -force to restart it anyway", n.Name, len(rep.AtRisk))
	}
	rep, err = c.Drain(ctx, client.DrainOptions{Force: force, LameDuck: true})
	if err != nil {
		return err
	}
	ui.Printf("%s: %d leadership(s) moved off in %d ms (meta leader: %v), lame duck", n.Name, len(rep.Moved), rep.ElapsedMS, rep.MetaLeader)
	return nil
}

// controlClient is the operator's client of n's control plane, reaching
// it as the gate does (nodeHTTP).
func (h *healthNodes) controlClient(n *provision.Node, op *client.Identity) (*client.Client, error) {
	rn, err := nodeHTTP(h.spec, n)
	if err != nil {
		return nil, err
	}
	hc := *rn.Client
	hc.Timeout = 30 * time.Second
	return client.New(rn.BaseURL, op, client.WithHTTPClient(&hc)), nil
}

// watchServices cancels ctx, with the reason, when any node's main
// process changes or stops while the gate waits: a node that crashed (and
// maybe came back under Restart=) is not something to roll on from.
func watchServices(ctx context.Context, spec *provision.Spec) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	type seen struct {
		pid  int
		unit string
		m    units.Manager
	}
	var watch []seen
	var names []string
	for i := range spec.Nodes {
		n := &spec.Nodes[i]
		m, err := managerFor(n)
		if err != nil {
			continue
		}
		unit := spec.UnitNameFor(n)
		st, err := m.Status(ctx, unit)
		if err != nil || st.MainPID == 0 {
			continue
		}
		watch = append(watch, seen{pid: st.MainPID, unit: unit, m: m})
		names = append(names, n.Name)
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for i, w := range watch {
				st, err := w.m.Status(ctx, w.unit)
				if err == nil && st.MainPID != w.pid {
					cancel(fmt.Errorf("%s's process %d ended while the gate waited (now %s/%s, main pid %d): stopping the rollout", names[i], w.pid, st.ActiveState, st.SubState, st.MainPID))
					return
				}
			}
		}
	}()
	return ctx, func() { close(done); cancel(nil) }
}
