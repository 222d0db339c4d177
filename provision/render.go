package provision

import (
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/unibus/unibus/pki"
	"github.com/unibus/unibus/templates"
	"github.com/unibus/unibus/units"
)

// RenderOptions are the inputs of [Render] besides the spec.
type RenderOptions struct {
	// Identities open what is sealed to the operators: CA keys (to issue
	// or renew a certificate) and the cluster password (to seal it to a new
	// node). Not needed when nothing has to be issued or sealed anew.
	Identities []age.Identity
	// RotateClusterPass generates a new cluster password.
	RotateClusterPass bool
	// Now is the time certificates are judged and issued at; zero is now.
	Now time.Time
	// Warn receives what the operator should know but is not an error.
	Warn func(string)
}

// Render computes every node's files without looking at any node: it
// observes the operator state, plans ([Plan]) and carries out the
// operator-state changes the plan needs ([Execute]): CAs created once,
// certificates issued or renewed when [pki.Decide] says so, the cluster
// password generated once and sealed to each node's age_recipient.
func Render(s *Spec, o RenderOptions) (*Desired, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	op, err := ObserveOperator(s)
	if err != nil {
		return nil, err
	}
	in := PlanInput{Spec: s, Operator: op, Now: o.Now, RotateClusterPass: o.RotateClusterPass}
	d, changes, err := Plan(in)
	if err != nil {
		return nil, err
	}
	if len(changes) == 0 && len(d.Pending()) == 0 {
		return d, nil // the steady state: nothing to carry out
	}
	return Execute(in, changes, ExecuteOptions{Identities: o.Identities, Warn: o.Warn})
}

// unitData is what the templates see.
type unitData struct {
	Node, Cluster, Role string
	ExecStart           string
	DynamicUser         bool
	ProtectHome         string
	StateDirectory      string
	Credentials         []string
	IPAddressAllow      [][]string // lines of the list
	WantedBy            string
	ClusterCredentials  []string
	ClusterExecStart    string
	MonitorPort         int
}

// A node's StateDirectory= name (Spec.StateDirectoryFor): %S/<it> is the
// state dir in both scopes (and the exec supervisor maps %S under the
// node's root).

func renderNode(s *Spec, n *Node, certs *pkiState, sealed content) (NodeFiles, error) {
	nf := NodeFiles{Node: n.Name, Target: n.Target, Unit: s.UnitNameFor(n)}
	stateDirectory := s.StateDirectoryFor(n)
	scope := n.Target.Scope
	cfg := scope.ConfigDir()
	tls := path.Join(cfg, "tls")
	onNode := func(rel string) string { return path.Join(n.Target.Root, rel) }
	leaves := certs.leaves[n.Name]
	cluster := s.IsCluster()

	// Every file membershipd reads reaches it as a credential, not by its
	// path: systemd (root) reads it and hands the service a private copy,
	// so the config folders stay 0700 and the service's DynamicUser= needs
	// no access to them.
	var creds, clusterCreds []string
	credential := func(list *[]string, id, rel string) string {
		*list = append(*list, id+":"+units.Escape(onNode(rel)))
		return "%d/" + id
	}

	args := []string{units.ExecArg(n.Target.Binary),
		"--node-name", units.ExecArg(n.Name),
		"--state-dir", "%S/" + stateDirectory,
		"--http-addr", units.ExecArg(hostPort(n.Bind, n.Ports.HTTP)),
		"--nats-addr", units.ExecArg(hostPort(n.Bind, n.Ports.NATS)),
		"--bus-auth", units.ExecArg(s.Cluster.BusAuth),
		"--js-sync", units.ExecArg(s.Cluster.JSSync),
		"--monitor-port", strconv.Itoa(n.Ports.Monitor),
	}
	if s.Cluster.ClientTLS {
		pair := leaves[pki.KindServer]
		nf.add(fileOf(path.Join(tls, "client.crt"), pki.CertMode, pair[0], false))
		nf.add(fileOf(path.Join(tls, "client.key"), pki.KeyMode, pair[1], true))
		nf.add(fileOf(path.Join(tls, "client-ca.crt"), pki.CertMode, certs.clientBundle, false))
		args = append(args,
			"--tls-cert", credential(&creds, "client.crt", path.Join(tls, "client.crt")),
			"--tls-key", credential(&creds, "client.key", path.Join(tls, "client.key")),
			"--tls-ca", credential(&creds, "client-ca.crt", path.Join(tls, "client-ca.crt")))
	}
	if s.FirstAdmin != nil {
		nf.add(File{Path: path.Join(cfg, "first-admin.json"), Mode: 0o644, Content: s.FirstAdmin})
		args = append(args, "--first-admin", credential(&creds, "first-admin.json", path.Join(cfg, "first-admin.json")))
	}
	if !s.Cluster.ClientTLS && !n.Bind.IsLoopback() {
		// client_tls = false is the spec's explicit choice of plain HTTP:
		// say so on the command line, where membershipd asks for it and
		// warns at every start, rather than let the node refuse to start.
		args = append(args, "--allow-plain-http")
	}
	baseArgs := args
	if cluster {
		// The base unit of a cluster node names its cluster, and without
		// the cluster drop-in's routes and password membershipd refuses to
		// start: a node never comes up alone because its drop-in is
		// missing or half-installed.
		baseArgs = append(slices.Clone(args), "--cluster-name", units.ExecArg(s.Cluster.Name))
	}
	data := unitData{
		Node: n.Name, Cluster: s.Cluster.Name, Role: "single-node " + s.Cluster.Name,
		ExecStart: strings.Join(baseArgs, " "), DynamicUser: scope == units.System, ProtectHome: "yes",
		StateDirectory: stateDirectory, IPAddressAllow: chunks(ipAllow(s), 32),
		WantedBy: scope.WantedBy(), MonitorPort: n.Ports.Monitor,
	}
	if scope == units.User {
		data.ProtectHome = "read-only"
	}
	if cluster {
		data.Role = "cluster " + s.Cluster.Name
		pair := leaves[pki.KindRoute]
		nf.add(fileOf(path.Join(tls, "route.crt"), pki.CertMode, pair[0], false))
		nf.add(fileOf(path.Join(tls, "route.key"), pki.KeyMode, pair[1], true))
		nf.add(fileOf(path.Join(tls, "route-ca.crt"), pki.CertMode, certs.routeBundle, false))
		nf.add(fileOf(path.Join(cfg, "cluster-pass.age"), 0o600, sealed, true))

		var routes []string
		for _, peer := range seeds(s) {
			if peer.Name != n.Name {
				routes = append(routes, "nats://"+net.JoinHostPort(peer.RouteHost, strconv.Itoa(peer.Ports.Cluster)))
			}
		}
		// The node's own identity stays on the node; systemd hands it to
		// membershipd as the age-identity credential.
		credential(&clusterCreds, "age-identity", path.Join(cfg, "age-identity"))
		clusterArgs := append(slices.Clone(args),
			"--cluster-name", units.ExecArg(s.Cluster.Name),
			"--cluster-addr", units.ExecArg(hostPort(n.Bind, n.Ports.Cluster)),
			"--routes", units.ExecArg(strings.Join(routes, ",")),
			"--route-tls-cert", credential(&clusterCreds, "route.crt", path.Join(tls, "route.crt")),
			"--route-tls-key", credential(&clusterCreds, "route.key", path.Join(tls, "route.key")),
			"--route-tls-ca", credential(&clusterCreds, "route-ca.crt", path.Join(tls, "route-ca.crt")),
			"--cluster-user", units.ExecArg(s.Cluster.ClusterUser),
			"--cluster-pass-file", credential(&clusterCreds, "cluster-pass.age", path.Join(cfg, "cluster-pass.age")),
			"--kv-replicas", strconv.Itoa(s.Cluster.KVReplicas))
		data.ClusterExecStart = strings.Join(clusterArgs, " ")
		data.ClusterCredentials = clusterCreds
	}
	data.Credentials = creds

	unitName := nf.Unit
	for _, f := range []struct {
		tmpl, path string
		want       bool
	}{
		{templates.Service, scope.UnitPath(unitName), true},
		{templates.Cluster, scope.DropInPath(unitName, "cluster.conf"), cluster},
		{templates.NATSMonitor, scope.DropInPath(unitName, "nats-monitor.conf"), s.Cluster.Monitor},
	} {
		if !f.want {
			continue
		}
		content, err := renderUnit(f.tmpl, data)
		if err != nil {
			return nf, err
		}
		nf.add(File{Path: f.path, Mode: 0o644, Content: content})
	}
	nf.sort()
	return nf, nil
}

func fileOf(p string, mode fs.FileMode, c content, secret bool) File {
	return File{Path: p, Mode: mode, Content: c.data, Pending: c.pending, Secret: secret}
}

// renderUnit executes a template and passes the result through the unit
// model, which validates every value and fixes the layout.
func renderUnit(name string, data unitData) ([]byte, error) {
	raw, err := templates.Execute(name, data)
	if err != nil {
		return nil, err
	}
	f, err := units.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return f.Bytes()
}

// chunks splits a list setting over several lines (systemd adds them up),
// so no line grows past go-systemd's 2048-byte limit however many peers.
func chunks(list []string, n int) [][]string {
	var out [][]string
	for len(list) > n {
		out = append(out, list[:n])
		list = list[n:]
	}
	return append(out, list)
}

// maxSeeds bounds --routes: NATS routes gossip, so every node finds the
// whole cluster through a few seeds, and a unit line stays short (go-systemd
// reads lines of at most 2048 bytes).
const maxSeeds = 16

// seeds are the nodes every node dials: all of them in a small cluster, the
// first maxSeeds+1 of the spec in a large one (each node skips itself).
func seeds(s *Spec) []Node {
	if len(s.Nodes) <= maxSeeds+1 {
		return s.Nodes
	}
	return s.Nodes[:maxSeeds+1]
}

func hostPort(a netip.Addr, port int) string {
	return net.JoinHostPort(a.String(), strconv.Itoa(port))
}

// ipAllow is IPAddressAllow=: loopback, every node's addresses (peers dial
// in and are dialled), and the client networks. Everything else is denied.
func ipAllow(s *Spec) []string {
	out := []string{"localhost"}
	var addrs []netip.Addr
	for _, n := range s.Nodes {
		for _, a := range n.Addresses {
			if !a.IsLoopback() {
				addrs = append(addrs, a)
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range slices.Compact(addrs) {
		out = append(out, a.String())
	}
	for _, p := range s.Cluster.ClientNetworks {
		if !slices.Contains(out, p.String()) {
			out = append(out, p.String())
		}
	}
	return out
}
