package provision

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/unibus/unibus/pki"
)

// OpAction is a change to the operator state that a plan needs.
type OpAction string

const (
	// CreateCAs creates the route CA and the client CA.
	CreateCAs OpAction = "create_cas"
	// ResealCAKeys re-encrypts both CA keys to operator_recipients.
	ResealCAKeys OpAction = "reseal_ca_keys"
	// IssueLeaf issues (or renews) one node certificate.
	IssueLeaf OpAction = "issue_leaf"
	// CreatePassword generates the cluster password (first use, rotation).
	CreatePassword OpAction = "create_cluster_password"
	// ResealPassword re-encrypts the operators' copy of the cluster
	// password to operator_recipients; the nodes' copies stay as they are.
	ResealPassword OpAction = "reseal_cluster_password"
	// SealForNode seals the cluster password to a node's recipient.
	SealForNode OpAction = "seal_cluster_password"
)

// OpChange is one operator-state change, as a value: [Execute] carries it
// out, a plan shows it.
type OpChange struct {
	Action OpAction `json:"action"`
	Node   string   `json:"node,omitempty"`
	// Kind is the leaf of an IssueLeaf change.
	Kind pki.Kind `json:"kind,omitempty"`
	// Recipient is who a SealForNode change seals to.
	Recipient string `json:"recipient,omitempty"`
	Reason    string `json:"reason"`
}

func (c OpChange) String() string {
	switch c.Action {
	case CreateCAs:
		return "create the route CA and the client CA (" + c.Reason + ")"
	case ResealCAKeys:
		return "reseal the CA keys to operator_recipients (" + c.Reason + ")"
	case IssueLeaf:
		return fmt.Sprintf("issue the %s certificate of %s (%s)", c.Kind, c.Node, c.Reason)
	case CreatePassword:
		return "generate the cluster password (" + c.Reason + ")"
	case ResealPassword:
		return "reseal the operators' copy of the cluster password (" + c.Reason + ")"
	case SealForNode:
		return fmt.Sprintf("seal the cluster password to %s (%s)", c.Node, c.Reason)
	}
	return string(c.Action) + " " + c.Node
}

// KnownAfterApply is how a plan shows content only apply can produce.
const KnownAfterApply = "(known after apply)"

// PlanInput is everything [Plan] decides from.
type PlanInput struct {
	Spec     *Spec
	Operator *OpState
	// Nodes are the observed nodes by name; a node absent here was not
	// observed (render), so only the spec says what its recipient is.
	Nodes map[string]*NodeState
	Now   time.Time
	// RotateClusterPass asks for a new cluster password.
	RotateClusterPass bool
}

// Plan is the pure step: from the spec, the operator state and the nodes
// as observed, it computes every node's files and the operator-state
// changes they need. It reads and writes nothing. A file whose content
// only apply can produce (a certificate to issue, a password to seal) has
// Pending set to the reason and no Content.
func Plan(in PlanInput) (*Desired, []OpChange, error) {
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	p := &planner{in: in, s: in.Spec, op: in.Operator}
	if err := p.checkRecipients(); err != nil {
		return nil, nil, err
	}
	certs, err := p.pki()
	if err != nil {
		return nil, nil, err
	}
	sealed, err := p.password()
	if err != nil {
		return nil, nil, err
	}
	d := &Desired{Cluster: p.s.Cluster.Name, Unit: p.s.UnitName()}
	for i := range p.s.Nodes {
		n := &p.s.Nodes[i]
		nf, err := renderNode(p.s, n, certs, sealed[n.Name])
		if err != nil {
			return nil, nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		d.Nodes = append(d.Nodes, nf)
	}
	return d, p.changes, nil
}

type planner struct {
	in      PlanInput
	s       *Spec
	op      *OpState
	changes []OpChange
}

func (p *planner) add(c OpChange) { p.changes = append(p.changes, c) }

// content is a file's bytes, or why they are known only after apply.
type content struct {
	data    []byte
	pending string
}

type pkiState struct {
	routeBundle, clientBundle content
	// leaf cert and key by node and kind
	leaves map[string]map[pki.Kind][2]content
}

// checkRecipients compares each observed node identity with the spec's
// pin: a mismatch means the spec names another machine's key.
func (p *planner) checkRecipients() error {
	var errs []error
	for _, n := range p.s.Nodes {
		obs := p.in.Nodes[n.Name]
		if obs == nil || obs.Recipient == "" || n.AgeRecipient == "" || obs.Recipient == n.AgeRecipient {
			continue
		}
		errs = append(errs, fmt.Errorf("node %s: its age identity (%s) has recipient %s, but the spec pins age_recipient = %q; fix the pin or check that root points at the right node",
			n.Name, obs.IdentityPath, obs.Recipient, n.AgeRecipient))
	}
	return errors.Join(errs...)
}

// recipient is who a node's copy of the password is sealed to: the
// observed identity's recipient, else the spec's pin, else "" (the
// identity does not exist yet; apply creates it).
func (p *planner) recipient(n *Node) string {
	if obs := p.in.Nodes[n.Name]; obs != nil && obs.Recipient != "" {
		return obs.Recipient
	}
	return n.AgeRecipient
}

func (p *planner) pki() (*pkiState, error) {
	s, op := p.s, p.op
	st := &pkiState{leaves: map[string]map[pki.Kind][2]content{}}
	var route, client *pkiCA
	if !op.HasCAs {
		p.add(OpChange{Action: CreateCAs, Reason: "no CA in " + string(s.Cluster.PKI.Dir)})
		pending := content{pending: "new CA"}
		st.routeBundle, st.clientBundle = pending, pending
	} else {
		route = &pkiCA{pki.RouteCA, op.RouteTrust.Active()}
		client = &pkiCA{pki.ClientCA, op.ClientTrust.Active()}
		if rec := p.caRecipientsChange(); rec != "" {
			p.add(OpChange{Action: ResealCAKeys, Reason: rec})
		}
		var err error
		if st.routeBundle.data, err = checkBundle(s.Cluster.PKI.RouteCABundle, op.RouteBundle, route); err != nil {
			return nil, err
		}
		if st.clientBundle.data, err = checkBundle(s.Cluster.PKI.ClientCABundle, op.ClientBundle, client); err != nil {
			return nil, err
		}
		if err := distinctCAs(s, st.routeBundle.data, st.clientBundle.data); err != nil {
			return nil, err
		}
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		m := map[pki.Kind][2]content{}
		for _, l := range s.leaves(n) {
			dec := pki.Decision{Action: pki.Renew, Reason: "missing"}
			have := op.Leaves[n.Name][l.Kind]
			if op.HasCAs {
				issuer := route
				if l.Kind.Issuer() == pki.ClientCA {
					issuer = client
				}
				if have.Problem != "" {
					dec.Reason = have.Problem
				} else {
					dec = pki.Decide(l, issuer.cert, have.Parsed, p.in.Now)
				}
			}
			if dec.Action == pki.Renew {
				p.add(OpChange{Action: IssueLeaf, Node: n.Name, Kind: l.Kind, Reason: dec.Reason})
				why := content{pending: "renew: " + dec.Reason}
				if dec.Reason == "missing" {
					why.pending = "new certificate"
				}
				m[l.Kind] = [2]content{why, why}
				continue
			}
			m[l.Kind] = [2]content{{data: have.Cert}, {data: have.Key}}
		}
		st.leaves[n.Name] = m
	}
	return st, nil
}

type pkiCA struct {
	kind pki.CAKind
	cert *x509.Certificate
}

// caRecipientsChange says why the CA keys must be resealed, "" when not.
func (p *planner) caRecipientsChange() string {
	want := recipientSet(p.s.Cluster.OperatorRecipientStrings)
	if len(p.s.Cluster.OperatorRecipients) == 0 {
		// Nothing to seal to; a key sealed before stays sealed.
		return ""
	}
	if !p.op.CAKeysEncrypted {
		return "the CA keys are stored unencrypted and operator_recipients is set"
	}
	have := p.op.CAKeyRecipients
	if have == "" && p.op.Password != nil {
		// Older state records only the password's recipients; the CA keys
		// were sealed to the same set.
		have = p.op.Password.Recipients
	}
	if have != "" && have != want {
		return "operator_recipients changed"
	}
	return ""
}

// checkBundle makes sure a trust bundle to ship trusts the CA that signs
// the nodes' certificates.
func checkBundle(file string, data []byte, signer *pkiCA) ([]byte, error) {
	if data == nil {
		return nil, fmt.Errorf("%s: the trust bundle is missing", file)
	}
	b, err := pki.ParseBundle(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if !slices.ContainsFunc(b, signer.cert.Equal) {
		return nil, fmt.Errorf("%s does not hold the %s CA that signs the node certificates (%q): nodes would not trust each other", file, signer.kind, signer.cert.Subject.CommonName)
	}
	return data, nil
}

func distinctCAs(s *Spec, route, client []byte) error {
	rb, _ := pki.ParseBundle(route)
	cb, _ := pki.ParseBundle(client)
	for _, r := range rb {
		for _, c := range cb {
			if r.Equal(c) || bytes.Equal(r.RawSubjectPublicKeyInfo, c.RawSubjectPublicKeyInfo) {
				return fmt.Errorf("%s and %s share the CA %q: the route CA must never be the client CA", s.Cluster.PKI.RouteCABundle, s.Cluster.PKI.ClientCABundle, r.Subject.CommonName)
			}
		}
	}
	return nil
}

// password decides the cluster password's changes and each node's sealed
// copy (nil map for a single node).
func (p *planner) password() (map[string]content, error) {
	if !p.s.IsCluster() {
		return nil, nil
	}
	c := &p.s.Cluster
	if len(c.OperatorRecipients) == 0 {
		return nil, errors.New("the cluster has no operator_recipients to keep the cluster password sealed to")
	}
	want := recipientSet(c.OperatorRecipientStrings)
	pw := p.op.Password
	generation := ""
	switch {
	case pw == nil:
		p.add(OpChange{Action: CreatePassword, Reason: "none yet"})
	case p.in.RotateClusterPass:
		p.add(OpChange{Action: CreatePassword, Reason: "rotation asked"})
	default:
		generation = pw.Generation
		if pw.Recipients != want {
			p.add(OpChange{Action: ResealPassword, Reason: "operator_recipients changed"})
		}
	}
	out := map[string]content{}
	for i := range p.s.Nodes {
		n := &p.s.Nodes[i]
		r := p.recipient(n)
		if r == "" {
			out[n.Name] = content{pending: "sealed once apply has created the node's age identity"}
			continue
		}
		have, ok := p.op.Sealed[n.Name]
		if generation != "" && ok && have.Source == sealSource(r, generation) {
			out[n.Name] = content{data: have.Sealed}
			continue
		}
		why := "new cluster password"
		switch {
		case generation == "":
		case !ok:
			why = "new node"
		case !strings.HasPrefix(have.Source, "recipient "+r+"\n"):
			why = "recipient changed"
		}
		p.add(OpChange{Action: SealForNode, Node: n.Name, Recipient: r, Reason: why})
		out[n.Name] = content{pending: "sealed to " + n.Name + ": " + why}
	}
	return out, nil
}

// sealSource is what a node's sealed copy records it was made from.
func sealSource(recipient, generation string) string {
	return "recipient " + recipient + "\n" + generation + "\n"
}

func recipientSet(r []string) string { return strings.Join(sortedCopy(r), "\n") + "\n" }
