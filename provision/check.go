package provision

import (
	"net"
	"net/netip"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/unibus/unibus/pki"
	"github.com/unibus/unibus/units"
)

// Defaults of a spec, as DESIGN.md fixes the daemon's.
const (
	DefaultHTTPPort        = 8470
	DefaultNATSPort        = 4250
	DefaultClusterPort     = 6250
	DefaultMonitorPort     = 8222
	DefaultBinary          = "/usr/local/bin/membershipd"
	DefaultStateDir        = ".unibus"
	DefaultClusterUser     = "unibus"
	DefaultReadyTimeout    = 2 * time.Minute
	DefaultConvergeTimeout = 5 * time.Minute
	// DefaultSamples: a node computes its state at most once a second, so
	// three samples are about three seconds of a converged cluster.
	DefaultSamples = 3
	maxSamples     = 60
)

// check turns the decoded blocks into a Spec, reporting every problem with
// the range it comes from.
type check struct {
	*loader
	ctx  *hcl.EvalContext
	spec *Spec
	// per node, for the checks across nodes
	ranges []nodeRanges
}

type nodeRanges struct {
	addrs []item
	dns   []item
	ports []portItem
}

type item struct {
	val string
	rng hcl.Range
}

type portItem struct {
	name string
	port int
	rng  hcl.Range
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
var dnsRE = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// strings decodes a list of strings, keeping each element's range when
// the list is written out in the spec, the whole list's otherwise.
func (c *check) strings(expr hcl.Expression, what string) []item {
	if expr == nil {
		return nil
	}
	if elems, d := hcl.ExprList(expr); !d.HasErrors() {
		var out []item
		for _, e := range elems {
			v, d := e.Value(c.ctx)
			c.diags = append(c.diags, d...)
			if d.HasErrors() {
				continue
			}
			s, err := convert.Convert(v, cty.String)
			if err != nil || s.IsNull() || !s.IsKnown() {
				c.errorf(e.Range(), "Incorrect attribute value type", "Each element of %s must be a string.", what)
				continue
			}
			out = append(out, item{s.AsString(), e.Range()})
		}
		return out
	}
	v, d := expr.Value(c.ctx)
	c.diags = append(c.diags, d...)
	if d.HasErrors() || v.IsNull() {
		return nil
	}
	lv, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || !lv.IsWhollyKnown() {
		c.errorf(expr.Range(), "Incorrect attribute value type", "%s must be a list of strings.", what)
		return nil
	}
	var out []item
	for _, e := range lv.AsValueSlice() {
		if !e.IsNull() {
			out = append(out, item{e.AsString(), expr.Range()})
		}
	}
	return out
}

func (c *check) nodes(blocks []nodeBlock) {
	seen := map[string]hcl.Range{}
	for _, b := range blocks {
		if prev, dup := seen[b.Name]; dup {
			c.errorf(b.NameRange, "Duplicate node", "A node named %q is already declared at %s; node names are unique.", b.Name, prev)
		}
		seen[b.Name] = b.NameRange
		if !nameRE.MatchString(b.Name) {
			c.errorf(b.NameRange, "Invalid node name", "Node name %q must be lower-case letters, digits and '-', at most 63, as in a host name: it names the certificate and the NATS server.", b.Name)
		}
		c.spec.Nodes = append(c.spec.Nodes, c.node(&b, len(blocks) > 1))
	}
	if len(blocks) == 0 {
		c.diags = append(c.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No node",
			Detail: "The spec declares no node block; add one per host that runs membershipd.", Subject: c.anyRange()})
	}
}

func (c *check) anyRange() *hcl.Range {
	if len(c.files) == 0 {
		return nil
	}
	r := c.files[0].file.Body.MissingItemRange()
	return &r
}

func (c *check) node(b *nodeBlock, cluster bool) Node {
	n := Node{Name: b.Name, DefRange: b.DefRange}
	var nr nodeRanges
	for _, it := range c.strings(b.Addresses, "addresses") {
		a, err := netip.ParseAddr(it.val)
		if err != nil || a.Zone() != "" {
			c.errorf(it.rng, "Invalid address", "%q is not an IP address. addresses are the IPs the node is reached at (they go into its certificates); put host names in dns.", it.val)
			continue
		}
		n.Addresses = append(n.Addresses, a.Unmap())
		nr.addrs = append(nr.addrs, item{a.Unmap().String(), it.rng})
	}
	if len(nr.addrs) == 0 && b.Addresses != nil {
		c.errorf(b.Addresses.Range(), "No address", "Node %q needs at least one IP address.", b.Name)
	}
	for _, it := range c.strings(b.DNS, "dns") {
		name := strings.ToLower(strings.TrimSuffix(it.val, "."))
		if !dnsRE.MatchString(name) {
			c.errorf(it.rng, "Invalid DNS name", "%q is not a valid host name.", it.val)
			continue
		}
		n.DNS = append(n.DNS, name)
		nr.dns = append(nr.dns, item{name, it.rng})
	}

	n.Bind = c.addr(b.Bind, b.BindRange, "bind", netip.IPv4Unspecified())
	n.MonitorBind = c.addr(b.MonitorBind, b.MonitorBindRange, "monitor_bind", netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	if b.MonitorBind != nil && n.MonitorBind.IsValid() && !n.MonitorBind.IsLoopback() {
		c.errorf(b.MonitorBindRange, "Monitor bound beyond loopback", "The nats-server monitor has no authentication, so it binds a loopback address only; %s is reachable from other hosts. Use 127.0.0.1 and reach it through ssh.", n.MonitorBind)
	}

	// The route host: what peers dial, so what the certificate must cover.
	switch {
	case b.RouteHost != nil:
		n.RouteHost = strings.ToLower(*b.RouteHost)
		if !covers(n, n.RouteHost) {
			c.errorf(b.RouteHostRange, "Route address not covered by the certificate", "Peers dial %q on the route port, but node %q's certificate only names %s. Add it to dns or addresses, or route to one of those.", n.RouteHost, n.Name, sanList(n))
		}
	case len(n.DNS) > 0:
		n.RouteHost = n.DNS[0]
	case len(n.Addresses) > 0:
		n.RouteHost = n.Addresses[0].String()
	}
	if cluster && len(n.DNS) > 0 && len(n.Addresses) == 0 {
		c.warnf(b.DefRange, "Route certificate without an IP address", "nats-server resolves a route's host name and verifies the certificate against the IP it dialled; give node %q its addresses.", n.Name)
	}

	p := b.Ports
	if p == nil {
		p = &portsBlock{}
	}
	rng := b.DefRange
	n.Ports = Ports{
		HTTP:    c.port(&nr, "http", p.HTTP, p.HTTPRange, DefaultHTTPPort, rng),
		NATS:    c.port(&nr, "nats", p.NATS, p.NATSRange, DefaultNATSPort, rng),
		Cluster: c.port(&nr, "cluster", p.Cluster, p.ClusterRange, DefaultClusterPort, rng),
		Monitor: c.port(&nr, "monitor", p.Monitor, p.MonitorRange, DefaultMonitorPort, rng),
	}
	if !cluster {
		// A single node opens no route port: it cannot clash.
		nr.ports = slices.DeleteFunc(nr.ports, func(p portItem) bool { return p.name == "cluster" })
	}
	for i, a := range nr.ports {
		for _, b := range nr.ports[:i] {
			if a.port == b.port {
				c.errorf(a.rng, "Duplicate port", "Port %d is already node %q's %s port; each listener needs its own.", a.port, n.Name, b.name)
			}
		}
	}

	if b.AgeIdentity != nil {
		c.errorf(b.AgeIdentity.Range, "Secret written inline", "A node's age identity is its private key and stays on the node (%s); the spec names only its age_recipient.", "the age-identity systemd credential")
	}
	// age_recipient is an optional pin: apply creates the node's identity
	// on the node, and plan reads its recipient back and checks the pin.
	if b.AgeRecipient != nil {
		if _, err := age.ParseX25519Recipient(*b.AgeRecipient); err != nil {
			c.errorf(b.AgeRecipientRange, "Invalid age recipient", "%v. Give the node's public key (age1...), printed by age-keygen -y on the node, or leave age_recipient out: apply creates the node's identity.", err)
		} else if placeholderRecipient(*b.AgeRecipient) {
			c.errorf(b.AgeRecipientRange, "Placeholder age recipient", "%s is an example key that nobody's node holds; leave age_recipient out (apply creates the node's identity and reads its recipient back) or pin the node's real one.", *b.AgeRecipient)
		} else {
			n.AgeRecipient = *b.AgeRecipient
		}
	}

	n.Target = c.target(b, &n)
	c.ranges = append(c.ranges, nr)
	return n
}

func covers(n Node, host string) bool {
	if a, err := netip.ParseAddr(host); err == nil {
		return slices.Contains(n.Addresses, a.Unmap())
	}
	return slices.Contains(n.DNS, strings.TrimSuffix(host, "."))
}

func sanList(n Node) string {
	var s []string
	s = append(s, n.DNS...)
	for _, a := range n.Addresses {
		s = append(s, a.String())
	}
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

func (c *check) addr(v *string, rng hcl.Range, what string, def netip.Addr) netip.Addr {
	if v == nil {
		return def
	}
	a, err := netip.ParseAddr(*v)
	if err != nil {
		c.errorf(rng, "Invalid address", "%s %q is not an IP address.", what, *v)
		return netip.Addr{}
	}
	return a.Unmap()
}

func (c *check) port(nr *nodeRanges, name string, v *int, rng hcl.Range, def int, blockRange hcl.Range) int {
	if v == nil {
		nr.ports = append(nr.ports, portItem{name, def, blockRange})
		return def
	}
	if *v <= 1024 || *v > 65535 {
		c.errorf(rng, "Invalid port", "Port %d: use 1025-65535. The unit grants no capability, so membershipd cannot bind a privileged port.", *v)
	}
	nr.ports = append(nr.ports, portItem{name, *v, rng})
	return *v
}

func (c *check) target(b *nodeBlock, n *Node) Target {
	t := Target{Scope: units.System, Manager: Systemd, Binary: DefaultBinary}
	tb := b.Target
	if tb == nil {
		tb = &targetBlock{DefRange: b.DefRange}
	}
	if tb.Scope != nil {
		s, err := units.ParseScope(*tb.Scope)
		if err != nil {
			c.errorf(tb.ScopeRange, "Invalid scope", "%v: system installs under /etc/systemd/system and runs as a dynamic user; user installs in the user's home.", err)
		}
		t.Scope = s
	}
	if tb.Manager != nil {
		switch m := Manager(*tb.Manager); m {
		case Systemd, Exec:
			t.Manager = m
		default:
			c.errorf(tb.ManagerRange, "Invalid manager", "manager %q: want \"systemd\" or \"exec\" (unibus's own supervisor, where no systemd runs).", *tb.Manager)
		}
	}
	if tb.SSH != nil {
		t.SSH = *tb.SSH
	}
	if tb.Sudo != nil {
		t.Sudo = *tb.Sudo
		if t.Sudo && t.SSH == "" {
			c.errorf(tb.SudoRange, "sudo without ssh", "sudo = true applies to a node reached over ssh; on this machine, run unibus as the user that owns the node's files.")
		}
	}
	// A remote node's root and binary are paths on that node: never
	// resolved against the spec's folder on this machine.
	onNode := func(p string, rng hcl.Range, what string) string {
		if t.SSH == "" {
			return c.path(p)
		}
		if !path.IsAbs(p) {
			c.errorf(rng, "Relative path on a remote node", "%s %q: node %s is reached over ssh, so its %s is a path on that node; give it in full, such as /home/unibus or /usr/local/bin/membershipd.", what, p, n.Name, what)
		}
		return path.Clean(p)
	}
	switch {
	case tb.Root != nil:
		t.Root = onNode(*tb.Root, tb.RootRange, "root")
	case t.Scope == units.User:
		c.errorf(tb.DefRange, "Missing root", "A user-scope node needs root: the home folder its files go under (units in .config/systemd/user).")
	default:
		t.Root = "/"
	}
	if tb.Binary != nil {
		t.Binary = onNode(*tb.Binary, tb.BinaryRange, "binary")
	}
	if strings.ContainsFunc(t.Root+t.Binary, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		c.errorf(tb.DefRange, "Invalid path", "root and binary must not hold control characters.")
	}
	return t
}

// path resolves a path of the spec: relative ones against the spec folder,
// so a spec means the same from any working directory.
func (c *check) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(c.dir, p)
}

func (c *check) cluster(b *clusterBlock, nodes int) {
	cl := &c.spec.Cluster
	cl.Name = b.Name
	if !nameRE.MatchString(b.Name) {
		c.errorf(b.NameRange, "Invalid cluster name", "Cluster name %q must be lower-case letters, digits and '-': it names the NATS cluster and the CAs.", b.Name)
	}
	cluster := nodes > 1
	for _, a := range []*hcl.Attribute{b.ClusterPass, b.ClusterPassword} {
		if a != nil {
			c.errorf(a.Range, "Secret written inline", "The cluster password never goes in the spec: unibus generates it once, keeps it sealed to operator_recipients and seals a copy to each node (cluster-pass.age). Remove %s.", a.Name)
		}
	}

	cl.BusAuth = "enforce"
	if b.BusAuth != nil {
		cl.BusAuth = *b.BusAuth
		switch {
		case !slices.Contains([]string{"off", "warn", "enforce"}, cl.BusAuth):
			c.errorf(b.BusAuthRange, "Invalid bus_auth", "bus_auth %q: want \"off\", \"warn\" or \"enforce\".", cl.BusAuth)
		case cluster && cl.BusAuth != "enforce":
			c.errorf(b.BusAuthRange, "Cluster without bus_auth enforce", "membershipd refuses to join a cluster unless every NATS connection authenticates; set bus_auth = \"enforce\" (it is the default).")
		}
	}

	// R3 where three nodes can hold it; a smaller cluster gets R1 and is
	// told it is not highly available.
	cl.KVReplicas = 1
	if nodes >= 3 {
		cl.KVReplicas = 3
	} else if cluster && b.KVReplicas == nil {
		c.warnf(b.NameRange, "kv_replicas = 1 is not highly available", "A cluster of %d nodes keeps one copy of each KV bucket (R3 needs three nodes); losing the node that holds one loses the control plane.", nodes)
	}
	if b.KVReplicas != nil {
		cl.KVReplicas = *b.KVReplicas
		switch {
		case cl.KVReplicas != 1 && cl.KVReplicas != 3:
			c.errorf(b.KVReplicasRange, "Invalid kv_replicas", "kv_replicas = %d: want 1 or 3.", cl.KVReplicas)
		case cl.KVReplicas == 3 && nodes < 3:
			c.errorf(b.KVReplicasRange, "Not enough nodes for kv_replicas", "kv_replicas = 3 keeps three copies of every KV bucket on three different nodes, and the spec has %d node(s). Add nodes or use kv_replicas = 1 (not highly available).", nodes)
		case cl.KVReplicas == 1 && cluster:
			c.warnf(b.KVReplicasRange, "kv_replicas = 1 is not highly available", "With one replica, losing the node that holds a bucket loses the control plane. Use 3 on a cluster of three or more nodes.")
		}
	}

	cl.JSSync = "always"
	if b.JSSync != nil {
		cl.JSSync = *b.JSSync
		if d, err := time.ParseDuration(cl.JSSync); cl.JSSync != "always" && (err != nil || d <= 0) {
			c.errorf(b.JSSyncRange, "Invalid js_sync", "js_sync %q: want \"always\" or a flush interval such as \"2m\".", cl.JSSync)
		}
	}
	cl.Monitor = b.Monitor != nil && *b.Monitor
	cl.ClientTLS = b.ClientTLS == nil || *b.ClientTLS
	cl.ClusterUser = DefaultClusterUser
	if b.ClusterUser != nil {
		cl.ClusterUser = *b.ClusterUser
		if !nameRE.MatchString(cl.ClusterUser) {
			c.errorf(b.ClusterUserRange, "Invalid cluster_user", "cluster_user %q: lower-case letters, digits and '-'.", cl.ClusterUser)
		}
	}
	cl.StateDir = c.path(DefaultStateDir)
	if b.StateDir != nil {
		cl.StateDir = c.path(*b.StateDir)
	}

	for _, it := range c.strings(b.ClientNetworks, "client_networks") {
		p, err := netip.ParsePrefix(it.val)
		if err != nil {
			if a, aerr := netip.ParseAddr(it.val); aerr == nil {
				p, err = a.Unmap().Prefix(a.Unmap().BitLen())
			}
		}
		if err != nil {
			c.errorf(it.rng, "Invalid network", "%q is not a network: write a CIDR range such as 10.0.0.0/24.", it.val)
			continue
		}
		cl.ClientNetworks = append(cl.ClientNetworks, p.Masked())
	}
	recips := c.strings(b.OperatorRecipients, "operator_recipients")
	for _, it := range recips {
		r, err := age.ParseX25519Recipient(it.val)
		if err != nil {
			c.errorf(it.rng, "Invalid age recipient", "%v. Give an operator's age public key (age1...).", err)
			continue
		}
		if placeholderRecipient(it.val) {
			c.errorf(it.rng, "Placeholder age recipient", "%s is an example key whose identity nobody holds: the CA keys and the cluster password sealed to it could never be opened. Give your own (unibus keygen prints it).", it.val)
			continue
		}
		cl.OperatorRecipients = append(cl.OperatorRecipients, r)
		cl.OperatorRecipientStrings = append(cl.OperatorRecipientStrings, it.val)
	}
	// No operator_recipients is not an error here: the unibus command
	// fills in the operator's own identity (cmd/unibus/operator.go), and
	// a plan refuses a cluster that still has none.
	c.pki(b.PKI)
}

func (c *check) pki(b *pkiBlock) {
	p := &c.spec.Cluster.PKI
	if b == nil {
		b = &pkiBlock{}
	}
	p.Dir = pki.Dir(filepath.Join(c.spec.Cluster.StateDir, "pki"))
	if b.Dir != nil {
		p.Dir = pki.Dir(c.path(*b.Dir))
	}
	p.KeyType = pki.DefaultKeyType
	if b.KeyType != nil {
		kt, err := pki.ParseKeyType(*b.KeyType)
		if err != nil {
			c.errorf(b.KeyTypeRange, "Invalid key_type", "%v: want \"p256\" or \"ed25519\".", err)
		}
		p.KeyType = kt
	}
	p.Validity = c.duration(b.Validity, b.ValidityRange, "validity", pki.DefaultLeafValidity)
	p.RenewBefore = c.duration(b.RenewBefore, b.RenewBeforeRange, "renew_before", pki.DefaultRenewBefore)
	p.CAValidity = c.duration(b.CAValidity, b.CAValidityRange, "ca_validity", pki.DefaultCAValidity)
	if p.RenewBefore >= p.Validity && b.RenewBefore != nil {
		c.errorf(b.RenewBeforeRange, "Renewal window too long", "renew_before must be shorter than validity, or every render would renew every certificate.")
	}
	p.RouteCABundle = p.Dir.CACert(pki.RouteCA)
	if b.RouteCABundle != nil {
		p.RouteCABundle = c.path(*b.RouteCABundle)
	}
	p.ClientCABundle = p.Dir.CACert(pki.ClientCA)
	if b.ClientCABundle != nil {
		p.ClientCABundle = c.path(*b.ClientCABundle)
	}
	if filepath.Clean(p.RouteCABundle) == filepath.Clean(p.ClientCABundle) {
		rng := b.ClientCABundleRange
		if b.ClientCABundle == nil {
			rng = b.RouteCABundleRange
		}
		c.errorf(rng, "Route CA and client CA are the same file", "Both route_ca_bundle and client_ca_bundle are %s. The route CA authenticates nodes to each other and must never be the client CA, or any client certificate would join the cluster.", p.RouteCABundle)
	}
}

var dayRE = regexp.MustCompile(`^([0-9]+)d$`)

// duration reads "90d" or any Go duration ("2m", "720h").
func (c *check) duration(v *string, rng hcl.Range, what string, def time.Duration) time.Duration {
	if v == nil {
		return def
	}
	if m := dayRE.FindStringSubmatch(*v); m != nil {
		n, _ := strconv.Atoi(m[1])
		if n > 0 {
			return time.Duration(n) * pki.Day
		}
	}
	d, err := time.ParseDuration(*v)
	if err != nil || d <= 0 {
		c.errorf(rng, "Invalid duration", "%s %q: write a positive duration such as \"90d\", \"720h\" or \"30s\".", what, *v)
		return def
	}
	return d
}

// crossNode checks what no single node block shows: a DNS name claimed by
// two nodes, two nodes on the same host with the same port.
func (c *check) crossNode(blocks []nodeBlock) {
	dnsOwner := map[string]int{}
	for i, nr := range c.ranges {
		for _, d := range nr.dns {
			if j, ok := dnsOwner[d.val]; ok && j != i {
				c.errorf(d.rng, "Duplicate name", "DNS name %q is already node %q's; a name in two certificates would let peers mistake one node for the other.", d.val, blocks[j].Name)
				continue
			}
			dnsOwner[d.val] = i
		}
	}
	cluster := len(blocks) > 1
	for i := range c.ranges {
		for j := range i {
			shared := sharedAddr(c.spec.Nodes[i], c.spec.Nodes[j])
			if !shared.IsValid() {
				continue
			}
			for _, p := range c.ranges[i].ports {
				for _, q := range c.ranges[j].ports {
					if p.port == q.port && (cluster || p.name != "cluster") {
						c.errorf(p.rng, "Duplicate port", "Nodes %q and %q share address %s, and port %d is already %q's %s port there.", c.spec.Nodes[i].Name, c.spec.Nodes[j].Name, shared, p.port, c.spec.Nodes[j].Name, q.name)
						break
					}
				}
			}
		}
	}
}

func sharedAddr(a, b Node) netip.Addr {
	for _, x := range a.Addresses {
		if slices.Contains(b.Addresses, x) {
			return x
		}
	}
	return netip.Addr{}
}

func (c *check) rollout(b *rolloutBlock) {
	r := &c.spec.Cluster.Rollout
	if b == nil {
		b = &rolloutBlock{}
	}
	r.ReadyTimeout = c.duration(b.ReadyTimeout, b.ReadyTimeoutRange, "ready_timeout", DefaultReadyTimeout)
	r.ConvergeTimeout = c.duration(b.ConvergeTimeout, b.ConvergeTimeoutRange, "converge_timeout", DefaultConvergeTimeout)
	r.Samples = DefaultSamples
	if b.Samples != nil {
		r.Samples = *b.Samples
		if r.Samples < 1 || r.Samples > maxSamples {
			c.errorf(b.SamplesRange, "Invalid samples", "samples = %d: the gate needs between 1 and %d consecutive converged samples (each takes about a second).", r.Samples, maxSamples)
		}
	}
	seen := map[string]bool{}
	for _, it := range c.strings(b.Order, "order") {
		switch {
		case c.spec.Node(it.val) == nil:
			c.errorf(it.rng, "Unknown node in rollout order", "The rollout order names %q, and no node block has that name.", it.val)
		case seen[it.val]:
			c.errorf(it.rng, "Node listed twice in rollout order", "%q is already in the rollout order; each node restarts once.", it.val)
		default:
			seen[it.val] = true
			r.Order = append(r.Order, it.val)
		}
	}
	// Nodes the order leaves out restart last, in the spec's order.
	for _, n := range c.spec.Nodes {
		if !seen[n.Name] {
			seen[n.Name] = true
			r.Order = append(r.Order, n.Name)
		}
	}
}

func netIPs(addrs []netip.Addr) []net.IP {
	out := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, net.IP(a.AsSlice()))
	}
	return out
}

// placeholderRecipients are the age recipients of documentation and
// examples: secrets sealed to them are sealed to nobody (or to everybody
// who read the same page).
var placeholderRecipients = []string{
	// age's README and man page
	"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
	"age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg",
}

// placeholderRecipient says whether r is a documentation key, or a key
// of one repeated byte (all zeros and the like), which no generator makes.
func placeholderRecipient(r string) bool {
	if slices.Contains(placeholderRecipients, r) {
		return true
	}
	data := strings.TrimPrefix(r, "age1")
	data = data[:max(0, len(data)-6)] // the bech32 checksum
	return len(data) > 0 && strings.Count(data, data[:1]) == len(data)
}
