package provision

import (
	"net/netip"
	"time"

	"filippo.io/age"
	"github.com/hashicorp/hcl/v2"

	"github.com/unibus/unibus/pki"
	"github.com/unibus/unibus/units"
)

// Spec is a decoded and checked cluster spec: plain values, defaults
// filled in, relative paths resolved against the spec's folder.
type Spec struct {
	// Dir is the folder the spec was read from.
	Dir string
	// Files are the parsed sources, for [Spec.WriteDiagnostics].
	Files   map[string]*hcl.File
	Cluster Cluster
	// Nodes are in the order the spec declares them.
	Nodes []Node
	// FirstAdmin is the public, self-vouched record of the admin the
	// control plane starts with (the operator's identity, filled in by
	// the unibus command); nil renders none.
	FirstAdmin []byte
}

// Cluster is the cluster block.
type Cluster struct {
	Name       string
	BusAuth    string // off, warn or enforce
	KVReplicas int    // 1 or 3
	JSSync     string // "always" or a flush interval
	// Monitor opens the nats-server monitor on loopback on every node.
	Monitor bool
	// ClientTLS gives every node a client-facing server certificate and
	// makes clients present one signed by the client CA.
	ClientTLS      bool
	ClientNetworks []netip.Prefix
	// OperatorRecipients encrypt the CA keys and the operator's copy of
	// the cluster password.
	OperatorRecipients []age.Recipient
	// OperatorRecipientStrings are the same, as written in the spec.
	OperatorRecipientStrings []string
	ClusterUser              string
	// StateDir is the operator's state beside the spec: PKI, sealed
	// password. It is never copied to a node.
	StateDir string
	PKI      PKISettings
	Rollout  Rollout
}

// PKISettings is the pki block.
type PKISettings struct {
	Dir pki.Dir
	// RouteCABundle and ClientCABundle are the trust bundles shipped to
	// the nodes; by default the ones in Dir.
	RouteCABundle, ClientCABundle string
	KeyType                       pki.KeyType
	Validity, RenewBefore         time.Duration
	CAValidity                    time.Duration
}

// Rollout is the rollout block: the order nodes restart in and how long
// apply waits for each.
type Rollout struct {
	Order           []string
	ReadyTimeout    time.Duration
	ConvergeTimeout time.Duration
	// Samples is how many consecutive converged samples the rollout gate
	// requires after each restart.
	Samples int
}

// Node is a node block.
type Node struct {
	Name      string
	Addresses []netip.Addr
	DNS       []string
	// RouteHost is the host peers dial on the route port; the node's
	// certificate covers it.
	RouteHost   string
	Bind        netip.Addr
	MonitorBind netip.Addr
	Ports       Ports
	// AgeRecipient receives the node's sealed cluster password; the
	// matching identity stays on the node.
	AgeRecipient string
	Target       Target
	// DefRange is where the node block starts, for later diagnostics.
	DefRange hcl.Range
}

// Ports are a node's listening ports.
type Ports struct{ HTTP, NATS, Cluster, Monitor int }

// Manager is what runs membershipd on a node.
type Manager string

const (
	// Systemd installs the unit and drives it over D-Bus.
	Systemd Manager = "systemd"
	// Exec is unibus's own supervisor, for machines without systemd.
	Exec Manager = "exec"
)

// Target says where a node's files go and how it is reached.
type Target struct {
	Scope units.Scope
	// Root prefixes every path on the node ("/" for a system install).
	Root string
	// SSH is user@host to reach the node; "" means this machine.
	SSH string
	// Sudo runs what touches a remote node's files and services under
	// sudo -n (a system-scope node reached as a user that is not root).
	Sudo    bool
	Manager Manager
	// Binary is the absolute path of membershipd on the node.
	Binary string
}

// IsCluster says whether the spec describes a cluster (more than one node)
// rather than a single node.
func (s *Spec) IsCluster() bool { return len(s.Nodes) > 1 }

// UnitName is the name of the membershipd unit of a node that has its
// machine to itself.
func (s *Spec) UnitName() string {
	if s.IsCluster() {
		return "membershipd-cluster.service"
	}
	return "unibus-membershipd.service"
}

// UnitNameFor is node n's unit name. Nodes that share one machine (the
// same ssh target, or this machine, each under a root of its own, as
// local-cluster's) get names of their own, membershipd-<node>.service, so
// one service manager can run them all.
func (s *Spec) UnitNameFor(n *Node) string {
	if s.sharesMachine(n) {
		return "membershipd-" + n.Name + ".service"
	}
	return s.UnitName()
}

// StateDirectoryFor is node n's StateDirectory= name, distinct for nodes
// sharing a machine as their unit names are.
func (s *Spec) StateDirectoryFor(n *Node) string {
	if s.sharesMachine(n) {
		return "membershipd-" + n.Name
	}
	return "membershipd"
}

func (s *Spec) sharesMachine(n *Node) bool {
	for i := range s.Nodes {
		if o := &s.Nodes[i]; o.Name != n.Name && o.Target.SSH == n.Target.SSH && o.Target.Root != n.Target.Root {
			return true
		}
	}
	return false
}

// Node returns the named node, or nil.
func (s *Spec) Node(name string) *Node {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i]
		}
	}
	return nil
}

// Leaf certificates of a node: a route certificate in a cluster, a
// client-facing server certificate with client TLS.
func (s *Spec) leaves(n *Node) []pki.Leaf {
	pn := pki.Node{Name: n.Name, DNS: n.DNS, IPs: netIPs(n.Addresses), KeyType: s.Cluster.PKI.KeyType,
		Validity: s.Cluster.PKI.Validity, RenewBefore: s.Cluster.PKI.RenewBefore}
	var out []pki.Leaf
	for _, l := range pn.Leaves() {
		if (l.Kind == pki.KindRoute && s.IsCluster()) || (l.Kind == pki.KindServer && s.Cluster.ClientTLS) {
			out = append(out, l)
		}
	}
	return out
}
