package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/unibus/unibus/pki"
	"github.com/unibus/unibus/units"
)

// Writer is a node's [Transport] with the means to change it: apply's
// half. Every write is atomic (a reader sees the old file or the new one,
// never a torn one) and lands with its final mode.
type Writer interface {
	Transport
	// WriteFile replaces p with data at mode, creating its folders.
	WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error
	// Remove deletes p; a missing p is not an error.
	Remove(ctx context.Context, p string) error
	// EnsureAgeIdentity makes the age identity at p on the node if there
	// is none and returns its recipient; the identity never leaves it.
	EnsureAgeIdentity(ctx context.Context, p string) (recipient string, created bool, err error)
}

// WriteFile implements [Writer]. Folders unibus makes are 0700 under the
// config dir (keys, sealed secrets) and 0755 elsewhere (units). Temporary
// files a killed apply left beside p are removed first.
func (t LocalTransport) WriteFile(_ context.Context, p string, data []byte, mode fs.FileMode) error {
	abs := t.abs(p)
	dirMode := fs.FileMode(0o755)
	if strings.Contains(p, "/unibus/") || strings.HasPrefix(p, "etc/unibus") || strings.HasPrefix(p, ".config/unibus") {
		dirMode = 0o700
	}
	if err := os.MkdirAll(filepath.Dir(abs), dirMode); err != nil {
		return err
	}
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".tmp*"))
	for _, f := range stale {
		os.Remove(f)
	}
	return pki.WriteFileAtomic(abs, data, mode)
}

// Remove implements [Writer].
func (t LocalTransport) Remove(_ context.Context, p string) error {
	err := os.Remove(t.abs(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// EnsureAgeIdentity implements [Writer].
func (t LocalTransport) EnsureAgeIdentity(ctx context.Context, p string) (string, bool, error) {
	if r, ok, err := t.AgeRecipient(ctx, p); err != nil || ok {
		return r, false, err
	}
	abs := t.abs(p)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return "", false, err
	}
	content := fmt.Sprintf("# unibus node identity: opens what is sealed to this node; never copy it off\n# public key: %s\n%s\n", id.Recipient(), id)
	// O_EXCL: two applies racing on one node keep one identity.
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		r, _, err := t.AgeRecipient(ctx, p)
		return r, false, err
	}
	if err != nil {
		return "", false, err
	}
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(abs)
		return "", false, err
	}
	return id.Recipient().String(), true, nil
}

// NodeIdentityFile is the name of a node's own age identity in its config
// dir (see [AgeIdentityPath]).
const NodeIdentityFile = "age-identity"

// DefaultWriter reaches a node for apply: its local root.
func DefaultWriter(n *Node) (Writer, error) {
	t, err := DefaultTransport(n)
	if err != nil {
		return nil, err
	}
	w, ok := t.(Writer)
	if !ok {
		return nil, fmt.Errorf("node %s: its transport cannot write", n.Name)
	}
	return w, nil
}

// PrepareNodes makes each node's age identity where it is missing and
// returns the nodes that got one. A plan made before needs making again:
// what is sealed to those nodes is known only now.
func PrepareNodes(ctx context.Context, s *Spec, writer func(*Node) (Writer, error)) ([]string, error) {
	if writer == nil {
		writer = DefaultWriter
	}
	var created []string
	for i := range s.Nodes {
		n := &s.Nodes[i]
		w, err := writer(n)
		if err != nil {
			return created, err
		}
		_, made, err := w.EnsureAgeIdentity(ctx, AgeIdentityPath(n.Target))
		if err != nil {
			return created, fmt.Errorf("node %s: age identity: %w", n.Name, err)
		}
		if made {
			created = append(created, n.Name)
		}
	}
	return created, nil
}

// ApplyOptions are the inputs of [Apply] besides the plan.
type ApplyOptions struct {
	// Identities open what is sealed to the operators, for the
	// operator-state changes of the plan.
	Identities []age.Identity
	// Writer opens a node for writing; nil means [DefaultWriter].
	Writer func(*Node) (Writer, error)
	// Manager is the node's service manager; nil (or a nil result) leaves
	// services alone.
	Manager func(*Node) (units.Manager, error)
	// Progress prints one line of what is being done.
	Progress func(format string, args ...any)
	Warn     func(string)
	// Rollout, when set, makes a change to a running cluster roll through
	// it one node at a time, gated on reconvergence ([rolloutNodes]).
	Rollout *Rollouter
}

// Rollouter is what a rolling apply asks of the running cluster; the
// command fills it from the nodes' health endpoints and control planes.
type Rollouter struct {
	// Converged says whether the cluster is converged now (one look, no
	// waiting): a rollout does not start on one that is not.
	Converged func(ctx context.Context) error
	// Gate waits until the cluster has converged again after n (re)started
	// (the whole cluster when n is nil), or says which node and condition
	// did not within the spec's timeouts.
	Gate func(ctx context.Context, n *Node) error
	// MetaLeader names the node leading the JetStream meta group, which
	// restarts last ("" when unknown).
	MetaLeader func(ctx context.Context) string
	// MoveLeaders moves every leadership off n before it restarts; nil
	// restarts without moving them.
	MoveLeaders func(ctx context.Context, n *Node) error
	// Force starts a rollout on a cluster that is not converged.
	Force bool
}

// ApplyResult counts what [Apply] did.
type ApplyResult struct {
	Written, Removed, Started, Restarted int
}

// Apply carries out p: the operator-state changes, then each node's files
// (written atomically, skipped where the node already has them, certificates
// and secrets before the units that use them), then each node's service,
// reloaded and started or restarted where the plan says so; with
// o.Rollout, a running cluster is changed one node at a time instead
// (rolling). A no-op plan writes nothing. A run killed anywhere leaves
// every file whole, and running it again converges.
func Apply(ctx context.Context, p *Planned, o ApplyOptions) (ApplyResult, error) {
	var res ApplyResult
	if o.Writer == nil {
		o.Writer = DefaultWriter
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	if !p.Doc.Changed() {
		return res, nil
	}
	if err := newPasswordOnRunningCluster(p); err != nil {
		return res, err
	}
	d := p.Desired
	if len(p.Changes) > 0 {
		var err error
		if d, err = Execute(p.Input, p.Changes, ExecuteOptions{Identities: o.Identities, Warn: o.Warn}); err != nil {
			return res, err
		}
	}
	s := p.Input.Spec
	var todo []nodeWork
	for i := range s.Nodes {
		n := &s.Nodes[i]
		nf, np := d.Node(n.Name), nodePlan(p.Doc, n.Name)
		if nf != nil && np != nil {
			todo = append(todo, nodeWork{n: n, nf: nf, np: np, seen: p.Input.Nodes[n.Name]})
		}
	}
	a := &applier{o: o, res: &res, readyTimeout: s.Cluster.Rollout.ReadyTimeout}
	if o.Manager == nil {
		for _, w := range todo {
			if err := a.write(ctx, w); err != nil {
				return res, err
			}
		}
		return res, nil
	}
	if o.Rollout == nil || fresh(todo) {
		return res, a.allAtOnce(ctx, todo)
	}
	return res, a.rolling(ctx, s, todo)
}

// newPasswordOnRunningCluster refuses a new cluster password while nodes
// run. NATS routes accept one user and password, so a node restarted with
// the new one cannot route to those still on the old: a rolling rotation
// partitions the cluster and its gate never passes.
func newPasswordOnRunningCluster(p *Planned) error {
	if !p.Input.Spec.IsCluster() {
		return nil
	}
	for _, c := range p.Changes {
		if c.Action != CreatePassword {
			continue
		}
		var running []string
		for _, n := range p.Input.Spec.Nodes {
			if st := p.Input.Nodes[n.Name]; st != nil && st.Service != nil && st.Service.ActiveState == "active" {
				running = append(running, n.Name)
			}
		}
		if len(running) > 0 {
			return fmt.Errorf("the plan makes a new cluster password (%s) while %s run: nodes on the new password cannot route to nodes on the old one, so it cannot roll without losing quorum; stop the cluster (unibus down), then apply: it starts every node at once with the new password (if the operator state's password was lost, restore %s instead)",
				c.Reason, strings.Join(running, ", "), "cluster-pass.age from a backup of "+p.Input.Spec.Cluster.StateDir)
		}
	}
	return nil
}

// nodeWork is one node's part of the plan.
type nodeWork struct {
	n    *Node
	nf   *NodeFiles
	np   *NodePlan
	seen *NodeState
}

type applier struct {
	o   ApplyOptions
	res *ApplyResult
	// readyTimeout bounds one start or restart (rollout { ready_timeout }).
	readyTimeout time.Duration
}

// fresh: no node runs yet and every node is to start. A new R3 cluster
// cannot come up one node at a time (a lone node never becomes ready),
// so it starts whole and is gated once.
func fresh(todo []nodeWork) bool {
	starts := 0
	for _, w := range todo {
		if w.seen != nil && w.seen.Service != nil && w.seen.Service.ActiveState == "active" {
			return false
		}
		if w.np.Restart != nil {
			if w.np.Restart.Action != "start" {
				return false
			}
			starts++
		}
	}
	return starts > 0
}

// allAtOnce writes every node's files, then starts or restarts each node
// the plan says, then gates once on the whole cluster.
func (a *applier) allAtOnce(ctx context.Context, todo []nodeWork) error {
	for _, w := range todo {
		if err := a.write(ctx, w); err != nil {
			return err
		}
	}
	started := false
	for _, w := range todo {
		ok, err := a.activate(ctx, w, false)
		if err != nil {
			return err
		}
		started = started || ok
	}
	if started && a.o.Rollout != nil {
		a.o.Progress("waiting for the whole cluster to converge")
		return a.o.Rollout.Gate(ctx, nil)
	}
	return nil
}

// rolling changes a running cluster one node at a time: nodes that only
// get files first, then nodes that are down, then, once the cluster is
// converged, each node to restart in the rollout order with the meta
// leader's node last: its files, leaders moved off, restart, and the gate
// before the next. On a failure it stops there; the nodes after
// it are untouched, files included, and the next plan shows what is left.
func (a *applier) rolling(ctx context.Context, s *Spec, todo []nodeWork) error {
	var restarts []nodeWork
	for _, w := range todo {
		if w.np.Restart == nil {
			if err := a.write(ctx, w); err != nil {
				return err
			}
			continue
		}
		restarts = append(restarts, w)
	}
	if len(restarts) == 0 {
		return nil
	}
	// A node that is not running (stopped, or left half-restarted by an
	// apply that was killed) starts first: it can only help the cluster
	// converge, and the gate after it says whether it did.
	slices.SortStableFunc(restarts, func(x, y nodeWork) int {
		return boolRank(x.np.Restart.Action != "start") - boolRank(y.np.Restart.Action != "start")
	})
	r := a.o.Rollout
	checked := false
	starts := 0
	for _, w := range restarts {
		if w.np.Restart.Action == "start" {
			starts++
		}
	}
	ordered := append(restarts[:starts:starts], rolloutOrder(s, restarts[starts:], r.MetaLeader(ctx))...)
	for i, w := range ordered {
		if w.np.Restart.Action == "restart" && !checked {
			checked = true
			if err := r.Converged(ctx); err != nil {
				if !r.Force {
					return a.stopped(fmt.Errorf("the cluster is not converged, so no running node was restarted: %w (wait for it, or pass -force)", err), ordered[i:])
				}
				a.o.Progress("rolling out although the cluster is not converged (-force): %v", err)
			}
		}
		if err := a.write(ctx, w); err != nil {
			return a.stopped(err, ordered[i+1:])
		}
		if _, err := a.activate(ctx, w, true); err != nil {
			return a.stopped(err, ordered[i+1:])
		}
		if err := r.Gate(ctx, w.n); err != nil {
			return a.stopped(fmt.Errorf("node %s %sed but the cluster did not converge: %w", w.n.Name, w.np.Restart.Action, err), ordered[i+1:])
		}
		a.o.Progress("%s: converged", w.n.Name)
	}
	return nil
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (a *applier) stopped(err error, left []nodeWork) error {
	if len(left) == 0 {
		return err
	}
	var names []string
	for _, w := range left {
		names = append(names, w.n.Name)
	}
	return fmt.Errorf("%w; not rolled out yet, untouched: %s", err, strings.Join(names, ", "))
}

// rolloutOrder is the spec's rollout order (nodes it does not name after,
// in spec order), with the meta leader's node moved last.
func rolloutOrder(s *Spec, ws []nodeWork, metaLeader string) []nodeWork {
	rank := map[string]int{}
	for i, name := range s.Cluster.Rollout.Order {
		rank[name] = i - len(s.Cluster.Rollout.Order)
	}
	for i := range s.Nodes {
		if _, ok := rank[s.Nodes[i].Name]; !ok {
			rank[s.Nodes[i].Name] = i
		}
	}
	if metaLeader != "" {
		rank[metaLeader] = len(s.Nodes)
	}
	out := slices.Clone(ws)
	slices.SortStableFunc(out, func(x, y nodeWork) int { return rank[x.n.Name] - rank[y.n.Name] })
	return out
}

// write writes a node's changed files and removes what the plan removes.
func (a *applier) write(ctx context.Context, w nodeWork) error {
	wr, err := a.o.Writer(w.n)
	if err != nil {
		return err
	}
	written, removed, err := writeNode(ctx, wr, w.nf, w.np, w.seen)
	a.res.Written += written
	a.res.Removed += removed
	if err != nil {
		return fmt.Errorf("node %s: %w", w.n.Name, err)
	}
	if written+removed > 0 {
		a.o.Progress("%s: %d file(s) written, %d removed", w.n.Name, written, removed)
	}
	return nil
}

// activate reloads the node's manager and starts or restarts its unit if
// the plan says so (moving leaders off first when rolling a running
// node); it reports whether it did.
func (a *applier) activate(ctx context.Context, w nodeWork, rolling bool) (bool, error) {
	n, np := w.n, w.np
	if np.Restart == nil {
		return false, nil
	}
	m, err := a.o.Manager(n)
	if err != nil || m == nil {
		if err != nil {
			return false, fmt.Errorf("node %s: %w", n.Name, err)
		}
		return false, nil
	}
	unit := np.Restart.Unit
	if err := m.Reload(ctx); err != nil {
		return false, fmt.Errorf("node %s: reload %s: %w", n.Name, m.Name(), err)
	}
	if err := m.Enable(ctx, unit); err != nil {
		return false, fmt.Errorf("node %s: enable %s: %w", n.Name, unit, err)
	}
	if rolling && np.Restart.Action == "restart" && a.o.Rollout.MoveLeaders != nil {
		if err := a.o.Rollout.MoveLeaders(ctx, n); err != nil {
			return false, fmt.Errorf("node %s: moving its leaders off before the restart: %w", n.Name, err)
		}
	}
	a.o.Progress("%s: %s %s (%s)", n.Name, np.Restart.Action, unit, strings.Join(np.Restart.Reasons, "; "))
	if a.readyTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.readyTimeout)
		defer cancel()
	}
	if np.Restart.Action == "restart" {
		err = m.Restart(ctx, unit)
		a.res.Restarted++
	} else {
		err = m.Start(ctx, unit)
		a.res.Started++
	}
	if err != nil {
		return false, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return true, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func nodePlan(doc *PlanDoc, node string) *NodePlan {
	for i := range doc.Nodes {
		if doc.Nodes[i].Node == node {
			return &doc.Nodes[i]
		}
	}
	return nil
}

// writeNode writes what differs from what was observed and removes what
// the plan removes. Units go last, so a unit never names a file that is
// not there yet.
func writeNode(ctx context.Context, w Writer, nf *NodeFiles, np *NodePlan, seen *NodeState) (written, removed int, err error) {
	files := slices.Clone(nf.Files)
	isUnit := func(f File) bool { return strings.Contains(f.Path, "/systemd/") }
	slices.SortStableFunc(files, func(a, b File) int {
		switch {
		case isUnit(a) == isUnit(b):
			return 0
		case isUnit(a):
			return 1
		}
		return -1
	})
	for _, f := range files {
		if seen != nil {
			if have, ok := seen.Files[f.Path]; ok && have.Mode == f.Mode && have.SHA256 == sha256Hex(f.Content) {
				continue
			}
		}
		if err := w.WriteFile(ctx, f.Path, f.Content, f.Mode); err != nil {
			return written, removed, err
		}
		written++
	}
	for _, c := range np.Changes {
		if c.Action != "remove" {
			continue
		}
		if err := w.Remove(ctx, path.Clean(c.Path)); err != nil {
			return written, removed, err
		}
		removed++
	}
	return written, removed, nil
}
