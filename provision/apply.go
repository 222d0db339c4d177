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
}

// ApplyResult counts what [Apply] did.
type ApplyResult struct {
	Written, Removed, Started, Restarted int
}

// Apply carries out p: the operator-state changes, then each node's files
// (written atomically, skipped where the node already has them, certificates
// and secrets before the units that use them), then each node's service,
// reloaded and started or restarted where the plan says so. A no-op plan
// writes nothing. A run killed anywhere leaves every file whole, and
// running it again converges.
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
	d := p.Desired
	if len(p.Changes) > 0 {
		var err error
		if d, err = Execute(p.Input, p.Changes, ExecuteOptions{Identities: o.Identities, Warn: o.Warn}); err != nil {
			return res, err
		}
	}
	s := p.Input.Spec
	for i := range s.Nodes {
		n := &s.Nodes[i]
		nf := d.Node(n.Name)
		np := nodePlan(p.Doc, n.Name)
		if nf == nil || np == nil {
			continue
		}
		w, err := o.Writer(n)
		if err != nil {
			return res, err
		}
		written, removed, err := writeNode(ctx, w, nf, np, p.Input.Nodes[n.Name])
		res.Written += written
		res.Removed += removed
		if err != nil {
			return res, fmt.Errorf("node %s: %w", n.Name, err)
		}
		if written+removed > 0 {
			o.Progress("%s: %d file(s) written, %d removed", n.Name, written, removed)
		}
	}
	if o.Manager == nil {
		return res, nil
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		np := nodePlan(p.Doc, n.Name)
		if np == nil || np.Restart == nil {
			continue
		}
		m, err := o.Manager(n)
		if err != nil || m == nil {
			if err != nil {
				return res, fmt.Errorf("node %s: %w", n.Name, err)
			}
			continue
		}
		unit := np.Restart.Unit
		if err := m.Reload(ctx); err != nil {
			return res, fmt.Errorf("node %s: reload %s: %w", n.Name, m.Name(), err)
		}
		if err := m.Enable(ctx, unit); err != nil {
			return res, fmt.Errorf("node %s: enable %s: %w", n.Name, unit, err)
		}
		o.Progress("%s: %s %s (%s)", n.Name, np.Restart.Action, unit, strings.Join(np.Restart.Reasons, "; "))
		if np.Restart.Action == "restart" {
			err = m.Restart(ctx, unit)
			res.Restarted++
		} else {
			err = m.Start(ctx, unit)
			res.Started++
		}
		if err != nil {
			return res, fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	return res, nil
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
