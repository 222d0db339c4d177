package provision

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
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

// Render computes every node's files. It keeps the operator state beside
// the spec up to date (CAs created once, certificates issued or renewed
// when [pki.Decide] says so, the cluster password generated once and
// sealed to each node) and touches no node.
func Render(s *Spec, o RenderOptions) (*Desired, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	if err := os.MkdirAll(s.Cluster.StateDir, 0o700); err != nil {
		return nil, err
	}
	certs, err := ensurePKI(s, o)
	if err != nil {
		return nil, err
	}
	var pw *passwordStore
	if s.IsCluster() {
		pw = newPasswordStore(&s.Cluster, o.Identities, o.RotateClusterPass)
		if err := pw.prepare(); err != nil {
			return nil, err
		}
	}
	d := &Desired{Cluster: s.Cluster.Name, Unit: s.UnitName()}
	for i := range s.Nodes {
		nf, err := renderNode(s, &s.Nodes[i], certs, pw)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", s.Nodes[i].Name, err)
		}
		d.Nodes = append(d.Nodes, nf)
	}
	return d, nil
}

type pkiState struct {
	routeBundle, clientBundle []byte
	// leaf PEMs by node and kind
	leaves map[string]map[pki.Kind][2][]byte
}

// ensurePKI creates the CAs on first use, issues what is missing or due,
// and reads back what the nodes get. CA keys are opened only when
// something has to be signed.
func ensurePKI(s *Spec, o RenderOptions) (*pkiState, error) {
	p := s.Cluster.PKI
	dir := p.Dir
	var cas *pki.CAs
	if _, err := os.Stat(dir.CACert(pki.RouteCA)); errors.Is(err, fs.ErrNotExist) {
		created, err := dir.InitCAs(pki.InitOptions{Cluster: s.Cluster.Name, KeyType: p.KeyType, Validity: p.CAValidity,
			Recipients: s.Cluster.OperatorRecipients, Now: o.Now})
		if err != nil {
			return nil, err
		}
		cas = &created
		if len(s.Cluster.OperatorRecipients) == 0 {
			o.Warn(fmt.Sprintf("CA keys in %s are stored unencrypted; add operator_recipients to the cluster block", dir))
		}
	}
	routeTrust, clientTrust, err := dir.Trust()
	if err != nil {
		return nil, err
	}
	signer := map[pki.CAKind]*pki.CA{
		pki.RouteCA:  {Kind: pki.RouteCA, Cert: routeTrust.Active()},
		pki.ClientCA: {Kind: pki.ClientCA, Cert: clientTrust.Active()},
	}
	var due []pki.Leaf
	var why []string
	for i := range s.Nodes {
		for _, l := range s.leaves(&s.Nodes[i]) {
			if dec := dir.DecideLeaf(l, signer[l.Kind.Issuer()], o.Now); dec.Action == pki.Renew {
				due = append(due, l)
				why = append(why, fmt.Sprintf("%s %s: %s", l.Name, l.Kind, dec.Reason))
			}
		}
	}
	if len(due) > 0 {
		if cas == nil {
			loaded, err := dir.LoadCAs(o.Identities...)
			if errors.Is(err, pki.ErrNeedIdentity) {
				return nil, fmt.Errorf("%w to sign certificates (%s): %v", ErrNeedIdentity, strings.Join(why, "; "), err)
			}
			if err != nil {
				return nil, err
			}
			cas = &loaded
		}
		if _, err := dir.IssueLeaves(*cas, due, pki.IssueOptions{Force: true, Now: o.Now}); err != nil {
			return nil, err
		}
	}

	st := &pkiState{leaves: map[string]map[pki.Kind][2][]byte{}}
	if st.routeBundle, err = readBundle(p.RouteCABundle, signer[pki.RouteCA]); err != nil {
		return nil, err
	}
	if st.clientBundle, err = readBundle(p.ClientCABundle, signer[pki.ClientCA]); err != nil {
		return nil, err
	}
	rb, _ := pki.ParseBundle(st.routeBundle)
	cb, _ := pki.ParseBundle(st.clientBundle)
	for _, r := range rb {
		for _, c := range cb {
			if r.Equal(c) || bytes.Equal(r.RawSubjectPublicKeyInfo, c.RawSubjectPublicKeyInfo) {
				return nil, fmt.Errorf("%s and %s share the CA %q: the route CA must never be the client CA", p.RouteCABundle, p.ClientCABundle, r.Subject.CommonName)
			}
		}
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		m := map[pki.Kind][2][]byte{}
		for _, l := range s.leaves(n) {
			certPath, keyPath := dir.LeafFiles(l)
			cert, err := os.ReadFile(certPath)
			if err != nil {
				return nil, err
			}
			key, err := os.ReadFile(keyPath)
			if err != nil {
				return nil, err
			}
			m[l.Kind] = [2][]byte{cert, key}
		}
		st.leaves[n.Name] = m
	}
	return st, nil
}

// readBundle reads a trust bundle to ship and makes sure it trusts the CA
// that signs the nodes' certificates.
func readBundle(file string, signer *pki.CA) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	b, err := pki.ParseBundle(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if !slices.ContainsFunc(b, signer.Cert.Equal) {
		return nil, fmt.Errorf("%s does not hold the %s CA that signs the node certificates (%q): nodes would not trust each other", file, signer.Kind, signer.Cert.Subject.CommonName)
	}
	return data, nil
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

// stateDirectory is the StateDirectory= name; %S/<it> is the state dir in
// both scopes (and the exec supervisor maps %S under the node's root).
const stateDirectory = "membershipd"

func renderNode(s *Spec, n *Node, certs *pkiState, pw *passwordStore) (NodeFiles, error) {
	nf := NodeFiles{Node: n.Name, Target: n.Target}
	scope := n.Target.Scope
	cfg := scope.ConfigDir()
	tls := path.Join(cfg, "tls")
	onNode := func(rel string) string { return path.Join(n.Target.Root, rel) }
	leaves := certs.leaves[n.Name]
	cluster := s.IsCluster()

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
		nf.add(File{Path: path.Join(tls, "client.crt"), Mode: pki.CertMode, Content: pair[0]})
		nf.add(File{Path: path.Join(tls, "client.key"), Mode: pki.KeyMode, Content: pair[1], Secret: true})
		nf.add(File{Path: path.Join(tls, "client-ca.crt"), Mode: pki.CertMode, Content: certs.clientBundle})
		args = append(args,
			"--tls-cert", units.ExecArg(onNode(path.Join(tls, "client.crt"))),
			"--tls-key", credential(&creds, "client.key", path.Join(tls, "client.key")),
			"--tls-ca", units.ExecArg(onNode(path.Join(tls, "client-ca.crt"))))
	}
	if !s.Cluster.ClientTLS && !n.Bind.IsLoopback() {
		// client_tls = false is the spec's explicit choice of plain HTTP:
		// say so on the command line, where membershipd asks for it and
		// warns at every start, rather than let the node refuse to start.
		args = append(args, "--allow-plain-http")
	}
	data := unitData{
		Node: n.Name, Cluster: s.Cluster.Name, Role: "single-node " + s.Cluster.Name,
		ExecStart: strings.Join(args, " "), DynamicUser: scope == units.System, ProtectHome: "yes",
		StateDirectory: stateDirectory, IPAddressAllow: chunks(ipAllow(s), 32),
		WantedBy: scope.WantedBy(), MonitorPort: n.Ports.Monitor,
	}
	if scope == units.User {
		data.ProtectHome = "read-only"
	}
	if cluster {
		data.Role = "cluster " + s.Cluster.Name
		pair := leaves[pki.KindRoute]
		nf.add(File{Path: path.Join(tls, "route.crt"), Mode: pki.CertMode, Content: pair[0]})
		nf.add(File{Path: path.Join(tls, "route.key"), Mode: pki.KeyMode, Content: pair[1], Secret: true})
		nf.add(File{Path: path.Join(tls, "route-ca.crt"), Mode: pki.CertMode, Content: certs.routeBundle})
		sealed, err := pw.forNode(n)
		if err != nil {
			return nf, err
		}
		nf.add(File{Path: path.Join(cfg, "cluster-pass.age"), Mode: 0o600, Content: sealed, Secret: true})

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
			"--route-tls-cert", units.ExecArg(onNode(path.Join(tls, "route.crt"))),
			"--route-tls-key", credential(&clusterCreds, "route.key", path.Join(tls, "route.key")),
			"--route-tls-ca", units.ExecArg(onNode(path.Join(tls, "route-ca.crt"))),
			"--cluster-user", units.ExecArg(s.Cluster.ClusterUser),
			"--cluster-pass-file", credential(&clusterCreds, "cluster-pass.age", path.Join(cfg, "cluster-pass.age")),
			"--kv-replicas", strconv.Itoa(s.Cluster.KVReplicas))
		data.ClusterExecStart = strings.Join(clusterArgs, " ")
		data.ClusterCredentials = clusterCreds
	}
	data.Credentials = creds

	unitName := s.UnitName()
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
