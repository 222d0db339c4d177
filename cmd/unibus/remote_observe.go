package main

import (
	"bytes"
	"context"
	"reflect"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/internal/sshnode"
	"github.com/unibus/unibus/provision"
	"github.com/unibus/unibus/units"
)

// observing is how plan and apply reach node n: its transport, and for a
// remote node one that reads its files and its service in one session.
func observing(ui cli.UI) func(n *provision.Node) (provision.Transport, error) {
	return func(n *provision.Node) (provision.Transport, error) {
		if n.Target.SSH == "" || n.Target.Manager != provision.Systemd {
			return access().transport(n)
		}
		t, err := access().remote(n)
		if err != nil {
			return nil, err
		}
		return remoteNode{Transport: t, n: n, ui: ui}, nil
	}
}

// remoteNode is a remote node's transport that also asks its systemd,
// in the session that reads its files.
type remoteNode struct {
	*sshnode.Transport
	n  *provision.Node
	ui cli.UI
}

func (r remoteNode) SnapshotService(ctx context.Context, req provision.SnapshotRequest, unit string) (*provision.Snapshot, *provision.ServiceState, error) {
	if f := access().takePrefetched(r.n.Name, req, unit); f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		r.ui.W.Write(f.warnings.Bytes())
		return f.snap, f.svc, f.err
	}
	return r.read(ctx, req, unit)
}

func (r remoteNode) read(ctx context.Context, req provision.SnapshotRequest, unit string) (*provision.Snapshot, *provision.ServiceState, error) {
	m, err := managerFor(r.n)
	if err != nil {
		return nil, nil, err
	}
	sm := m.(*units.SystemctlManager)
	body, args := sm.ObserveShell(unit)
	snap, out, runErr, err := r.SnapshotWith(ctx, req, body, args...)
	if err != nil {
		return nil, nil, err
	}
	st, stErr := sm.Observed(unit, out, runErr)
	version := func() (string, error) {
		if stErr != nil {
			return "", stErr // the manager did not answer: neither did its version
		}
		return sm.Version(ctx) // read with the status
	}
	ss, err := serviceState(ctx, r.ui, r.n, sm, version, func() (units.UnitStatus, error) { return st, stErr })
	return snap, ss, err
}

// prefetch starts reading every remote node as plan will (its files and
// its service, one session each) as soon as the spec is known, so those
// round trips overlap the run's own work (the operator's state); the
// plan's observation of each node then takes the answer, once. Warnings
// wait in the answer until then.
func (a *nodeAccess) prefetch(s *provision.Spec) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.prefetched == nil {
		a.prefetched = map[string]*prefetchedNode{}
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if n.Target.SSH == "" || n.Target.Manager != provision.Systemd {
			continue
		}
		f := &prefetchedNode{req: provision.ObserveRequest(s, n), unit: s.UnitNameFor(n), done: make(chan struct{})}
		a.prefetched[n.Name] = f
		go func() {
			defer close(f.done)
			t, err := a.remote(n)
			if err != nil {
				f.err = err
				return
			}
			r := remoteNode{Transport: t, n: n, ui: cli.UI{Prog: "unibus", W: &f.warnings}}
			f.snap, f.svc, f.err = r.read(context.Background(), f.req, f.unit)
		}()
	}
}

// takePrefetched is node's prefetched answer to req, or nil (none, taken
// already, or asked of something else): an answer serves one reading,
// and later ones read the node afresh.
func (a *nodeAccess) takePrefetched(node string, req provision.SnapshotRequest, unit string) *prefetchedNode {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.prefetched[node]
	if f == nil || f.unit != unit || !reflect.DeepEqual(f.req, req) {
		return nil
	}
	delete(a.prefetched, node)
	return f
}

type prefetchedNode struct {
	req      provision.SnapshotRequest
	unit     string
	done     chan struct{}
	snap     *provision.Snapshot
	svc      *provision.ServiceState
	err      error
	warnings bytes.Buffer
}
