package provision

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"github.com/unibus/unibus/pki"
)

// ExecuteOptions are the inputs of [Execute] besides the plan.
type ExecuteOptions struct {
	// Identities open what is sealed to the operators (CA keys, the
	// operators' copy of the cluster password). Needed only by changes
	// that sign or seal with them.
	Identities []age.Identity
	// Warn receives what the operator should know but is not an error.
	Warn func(string)
}

// Execute carries out the operator-state changes [Plan] computed from in,
// then plans again from the new operator state and returns the final
// desired state, every content known. It touches no node. Planning again
// must need no further change; a file still pending (a node with neither
// an identity nor a pinned recipient) is an error.
func Execute(in PlanInput, changes []OpChange, o ExecuteOptions) (*Desired, error) {
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	s := in.Spec
	if err := os.MkdirAll(s.Cluster.StateDir, 0o700); err != nil {
		return nil, err
	}
	x := &executor{s: s, in: in, ids: o.Identities, warn: o.Warn,
		pw: newPasswordStore(&s.Cluster, o.Identities, false)}
	steps := []struct {
		action OpAction
		run    func([]OpChange) error
	}{
		{CreateCAs, x.createCAs}, {ResealCAKeys, x.resealCAKeys}, {IssueLeaf, x.issue},
		{CreatePassword, x.createPassword}, {ResealPassword, x.resealPassword}, {SealForNode, x.sealForNodes},
	}
	for _, st := range steps {
		var these []OpChange
		for _, c := range changes {
			if c.Action == st.action {
				these = append(these, c)
			}
		}
		if len(these) > 0 {
			if err := st.run(these); err != nil {
				return nil, err
			}
		}
	}

	op, err := ObserveOperator(s)
	if err != nil {
		return nil, err
	}
	in.Operator, in.RotateClusterPass = op, false
	d, again, err := Plan(in)
	if err != nil {
		return nil, err
	}
	if len(again) > 0 {
		return nil, fmt.Errorf("the operator state in %s still needs a change after apply (%s); this is a bug, please report it", s.Cluster.StateDir, again[0])
	}
	for _, n := range d.Nodes {
		for _, f := range n.Files {
			if f.Pending != "" {
				return nil, fmt.Errorf("node %s: no age recipient to seal the cluster password to: pin age_recipient in the spec, or use unibus apply, which creates the node's identity on the node", n.Node)
			}
		}
	}
	return d, nil
}

type executor struct {
	s    *Spec
	in   PlanInput
	ids  []age.Identity
	warn func(string)
	pw   *passwordStore
	cas  *pki.CAs
	// generation of the password the nodes get sealed
	generation string
}

func (x *executor) dir() pki.Dir { return x.s.Cluster.PKI.Dir }

func (x *executor) createCAs([]OpChange) error {
	c := &x.s.Cluster
	created, err := x.dir().InitCAs(pki.InitOptions{Cluster: c.Name, KeyType: c.PKI.KeyType, Validity: c.PKI.CAValidity,
		Recipients: c.OperatorRecipients, Now: x.in.Now})
	if err != nil {
		return err
	}
	x.cas = &created
	if len(c.OperatorRecipients) == 0 {
		x.warn(fmt.Sprintf("CA keys in %s are stored unencrypted; add operator_recipients to the cluster block", x.dir()))
		return nil
	}
	return x.writeCARecipients()
}

func (x *executor) writeCARecipients() error {
	return pki.WriteFileAtomic(filepath.Join(x.s.Cluster.StateDir, caRecipientsFile),
		[]byte(recipientSet(x.s.Cluster.OperatorRecipientStrings)), 0o600)
}

// loadCAs opens the CA keys once; why says what for, in the error.
func (x *executor) loadCAs(why string) error {
	if x.cas != nil {
		return nil
	}
	loaded, err := x.dir().LoadCAs(x.ids...)
	if errors.Is(err, pki.ErrNeedIdentity) {
		return fmt.Errorf("%w to %s: %v", ErrNeedIdentity, why, err)
	}
	if err != nil {
		return err
	}
	x.cas = &loaded
	return nil
}

func (x *executor) resealCAKeys(cs []OpChange) error {
	if err := x.loadCAs("reseal the CA keys (" + cs[0].Reason + ")"); err != nil {
		return err
	}
	for _, ca := range []*pki.CA{x.cas.Route, x.cas.Client} {
		keyPEM, err := pki.MarshalKey(ca.Key)
		if err != nil {
			return err
		}
		sealed, err := pki.EncryptKey(keyPEM, x.s.Cluster.OperatorRecipients...)
		if err != nil {
			return err
		}
		if err := pki.WriteFileAtomic(x.dir().CAKey(ca.Kind), sealed, pki.KeyMode); err != nil {
			return err
		}
	}
	return x.writeCARecipients()
}

func (x *executor) issue(cs []OpChange) error {
	var due []pki.Leaf
	var why []string
	for _, c := range cs {
		n := x.s.Node(c.Node)
		if n == nil {
			return fmt.Errorf("the plan issues a certificate for node %q, which the spec does not declare", c.Node)
		}
		for _, l := range x.s.leaves(n) {
			if l.Kind == c.Kind {
				due = append(due, l)
				why = append(why, fmt.Sprintf("%s %s: %s", l.Name, l.Kind, c.Reason))
			}
		}
	}
	if err := x.loadCAs("sign certificates (" + strings.Join(why, "; ") + ")"); err != nil {
		return err
	}
	_, err := x.dir().IssueLeaves(*x.cas, due, pki.IssueOptions{Force: true, Now: x.in.Now})
	return err
}

func (x *executor) createPassword([]OpChange) error {
	if err := x.pw.generate(); err != nil {
		return err
	}
	g, err := os.ReadFile(filepath.Join(x.s.Cluster.StateDir, generationFile))
	x.generation = strings.TrimSpace(string(g))
	return err
}

func (x *executor) resealPassword(cs []OpChange) error {
	if err := x.pw.open(cs[0].Reason); err != nil {
		return err
	}
	if err := x.pw.sealOperator(); err != nil {
		return err
	}
	// The password is the same: keep its generation (older state had
	// none, and named it by the copy just replaced), so no node's copy
	// goes stale.
	x.generation = x.in.Operator.Password.Generation
	return x.pw.writeGeneration(x.generation)
}

func (x *executor) sealForNodes(cs []OpChange) error {
	if x.generation == "" {
		if x.in.Operator.Password == nil {
			return errors.New("the plan seals the cluster password to nodes but none exists; plan again")
		}
		x.generation = x.in.Operator.Password.Generation
	}
	for _, c := range cs {
		if err := x.pw.sealFor(c.Node, c.Recipient, x.generation); err != nil {
			return err
		}
	}
	return nil
}
