package provision

import (
	"context"
	"crypto/x509"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/unibus/unibus/pki"
)

// NodeState is one node as observed: what unibus owns there, by hash and
// mode; the certificates by expiry, names and issuer; the units' text (not
// secret, and needed for the effective unit's diff); the recipient of the
// node's age identity; and, when a hook observes it, the service.
type NodeState struct {
	Node  string
	Files map[string]FileState
	Certs map[string]CertState
	// Units are the unit files (the base unit and its drop-ins) by path.
	Units map[string][]byte
	// Recipient is the node's age identity's recipient; "" when the node
	// has no identity yet.
	Recipient    string
	IdentityPath string
	// Service is nil when no hook observed it.
	Service *ServiceState
}

// CertState is a certificate a node holds.
type CertState struct {
	NotAfter time.Time `json:"not_after"`
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	DNS      []string  `json:"dns,omitempty"`
	IPs      []string  `json:"ips,omitempty"`

	cert *x509.Certificate
}

// ServiceState is the service as its manager reports it.
type ServiceState struct {
	ActiveState    string `json:"active_state"`
	SubState       string `json:"sub_state,omitempty"`
	Manager        string `json:"manager"`
	ManagerVersion string `json:"manager_version,omitempty"`
	// NotEnforced are directives of the units the manager accepts but
	// does not apply ("Name="); plan names them.
	NotEnforced []string `json:"not_enforced,omitempty"`
}

// ServiceObserver reports a node's service; the integrator fills it from
// the node's service manager. It returns nil when the unit is unknown.
type ServiceObserver func(ctx context.Context, n *Node, unit string) (*ServiceState, error)

// ObserveOptions say how [ObserveNodes] reaches nodes.
type ObserveOptions struct {
	// Transport opens a node's transport; nil means [DefaultTransport].
	Transport func(n *Node) (Transport, error)
	// Service, when set, observes each node's service and manager.
	Service ServiceObserver
	// Concurrency bounds how many nodes are observed at once (default 16).
	Concurrency int
}

// DefaultTransport reaches a node through the local filesystem under its
// root; an ssh target is refused (the SSH transport lives in
// internal/sshnode, which cmd/unibus chooses for it).
func DefaultTransport(n *Node) (Transport, error) {
	if n.Target.SSH != "" {
		return nil, fmt.Errorf("node %s: target ssh = %q: the SSH transport is not built yet; only local targets can be observed", n.Name, n.Target.SSH)
	}
	return LocalTransport{Root: n.Target.Root}, nil
}

// ObserveNodes observes every node of s concurrently. It reads and
// never writes; secret files are hashed, never kept.
func ObserveNodes(ctx context.Context, s *Spec, o ObserveOptions) (map[string]*NodeState, error) {
	if o.Transport == nil {
		o.Transport = DefaultTransport
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	out := make([]*NodeState, len(s.Nodes))
	errs := make([]error, len(s.Nodes))
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for i := range s.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			n := &s.Nodes[i]
			out[i], errs[i] = observeNode(ctx, s, n, o)
			// Errors of the transport name the node already.
			if errs[i] != nil && !strings.HasPrefix(errs[i].Error(), "node "+n.Name+": ") {
				errs[i] = fmt.Errorf("observe node %s: %w", n.Name, errs[i])
			}
		}()
	}
	wg.Wait()
	m := map[string]*NodeState{}
	for i, st := range out {
		if errs[i] != nil {
			return nil, errs[i]
		}
		m[st.Node] = st
	}
	return m, nil
}

func observeNode(ctx context.Context, s *Spec, n *Node, o ObserveOptions) (*NodeState, error) {
	t, err := o.Transport(n)
	if err != nil {
		return nil, err
	}
	st := &NodeState{Node: n.Name, Files: map[string]FileState{}, Certs: map[string]CertState{},
		Units: map[string][]byte{}, IdentityPath: path.Join(n.Target.Root, ageIdentityPath(n.Target))}
	unitDir := n.Target.Scope.UnitDir()
	req := ObserveRequest(s, n)
	var snap *Snapshot
	if ss, ok := t.(ServiceSnapshotter); ok && o.Service != nil {
		if snap, st.Service, err = ss.SnapshotService(ctx, req, s.UnitNameFor(n)); err != nil {
			return nil, err
		}
	} else {
		// The service is asked while the files are read.
		var svcErr error
		svcDone := make(chan struct{})
		go func() {
			defer close(svcDone)
			if o.Service != nil {
				st.Service, svcErr = o.Service(ctx, n, s.UnitNameFor(n))
			}
		}()
		snap, err = TakeSnapshot(ctx, t, req)
		<-svcDone
		if err != nil {
			return nil, err
		}
		if svcErr != nil {
			return nil, svcErr
		}
	}
	st.Recipient = snap.Recipient
	for _, f := range snap.Files {
		if f.Path == ageIdentityPath(n.Target) {
			continue // the node's own key: apply's, never planned or removed
		}
		st.Files[f.Path] = f
		data, ok := snap.Public[f.Path]
		switch {
		case !ok:
		case hasPrefixPath(f.Path, unitDir):
			st.Units[f.Path] = data
		default:
			if b, err := pki.ParseBundle(data); err == nil {
				c := b[0]
				cs := CertState{NotAfter: c.NotAfter, Subject: c.Subject.CommonName, Issuer: c.Issuer.CommonName, DNS: c.DNSNames, cert: c}
				for _, ip := range c.IPAddresses {
					cs.IPs = append(cs.IPs, ip.String())
				}
				st.Certs[f.Path] = cs
			}
		}
	}
	return st, nil
}

// ObserveRequest is what observation reads of node n: the paths unibus
// owns there, the units and certificates among them, the age identity.
func ObserveRequest(s *Spec, n *Node) SnapshotRequest {
	return SnapshotRequest{Paths: ownedPaths(s, n), PublicDirs: []string{n.Target.Scope.UnitDir()},
		PublicExt: ".crt", Identity: ageIdentityPath(n.Target)}
}

// knownUnits are every unit name unibus has rendered: a node that moves
// from a single node to a cluster has the other one to remove.
var knownUnits = []string{"membershipd-cluster.service", "unibus-membershipd.service"}

// ownedPaths are the paths on a node that unibus owns: its config folder
// (certificates, sealed password; the age identity excepted) and its
// units with their drop-in folders. A file there that the desired state
// does not have is removed by apply.
func ownedPaths(s *Spec, n *Node) []string {
	sc := n.Target.Scope
	out := []string{sc.ConfigDir()}
	names := append(slices.Clone(knownUnits), s.UnitNameFor(n))
	slices.Sort(names)
	for _, u := range slices.Compact(names) {
		out = append(out, sc.UnitPath(u), sc.UnitPath(u)+".d")
	}
	return out
}
