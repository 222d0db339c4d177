package provision

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/unibus/unibus/pki"
)

// PlanFormatVersion is the format_version of a plan's JSON (plan -json,
// plan -out, show -json). The major number changes when a reader of the
// previous format would misread it.
const PlanFormatVersion = "1.0"

// PlanDoc is a plan as it is printed and saved: what would change and
// why, bound to the spec and to what was observed. It holds no secret:
// secret contents appear only as keyed fingerprints.
type PlanDoc struct {
	FormatVersion string    `json:"format_version"`
	Spec          SpecRef   `json:"spec"`
	PlannedAt     time.Time `json:"planned_at"`
	StateDir      string    `json:"state_dir"`
	// OperatorDigest and NodeDigests are keyed digests of the operator
	// state and of each node as observed: apply observes again and
	// refuses the plan when one differs.
	OperatorDigest  string            `json:"operator_digest"`
	NodeDigests     map[string]string `json:"node_digests"`
	OperatorChanges []OpChange        `json:"operator_changes"`
	Nodes           []NodePlan        `json:"nodes"`
	Summary         Summary           `json:"summary"`
}

// SpecRef names the spec a plan was made from.
type SpecRef struct {
	Path      string            `json:"path"`
	SHA256    string            `json:"sha256"`
	Variables map[string]string `json:"variables,omitempty"`
}

// Planned is a plan with the values apply carries out.
type Planned struct {
	Input   PlanInput
	Desired *Desired
	Changes []OpChange
	Doc     *PlanDoc
}

// PlanOptions are the inputs of [MakePlan] besides the spec.
type PlanOptions struct {
	// SpecPath and Vars are recorded in the plan (the spec is loaded by
	// the caller).
	SpecPath string
	Vars     map[string]string
	// Now is when certificates are judged; zero is now.
	Now               time.Time
	RotateClusterPass bool
	Observe           ObserveOptions
}

// MakePlan observes the operator state and every node (concurrently),
// plans and diffs. It writes nothing anywhere.
func MakePlan(ctx context.Context, s *Spec, o PlanOptions) (*Planned, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	op, err := ObserveOperator(s)
	if err != nil {
		return nil, err
	}
	nodes, err := ObserveNodes(ctx, s, o.Observe)
	if err != nil {
		return nil, err
	}
	in := PlanInput{Spec: s, Operator: op, Nodes: nodes, Now: o.Now, RotateClusterPass: o.RotateClusterPass}
	d, changes, err := Plan(in)
	if err != nil {
		return nil, err
	}
	np := Diff(s, d, nodes, o.Now, op.fingerprintKey)
	doc := &PlanDoc{
		FormatVersion:  PlanFormatVersion,
		Spec:           SpecRef{Path: o.SpecPath, SHA256: SpecHash(s, o.Vars), Variables: o.Vars},
		PlannedAt:      o.Now.UTC().Truncate(time.Second),
		StateDir:       s.Cluster.StateDir,
		OperatorDigest: op.digest(), NodeDigests: map[string]string{},
		OperatorChanges: changes, Nodes: np, Summary: Summarize(np, changes),
	}
	if doc.OperatorChanges == nil {
		doc.OperatorChanges = []OpChange{}
	}
	for name, st := range nodes {
		doc.NodeDigests[name] = st.digest(op.fingerprintKey)
	}
	return &Planned{Input: in, Desired: d, Changes: changes, Doc: doc}, nil
}

// Stale says why a saved plan no longer matches p, a plan made now from
// the same spec path: nil when the spec, the operator state and every node
// are as the saved plan saw them.
func (p *Planned) Stale(saved *PlanDoc) error {
	now := p.Doc
	if saved.Spec.SHA256 != now.Spec.SHA256 {
		return errors.New("the spec (or a -var) changed since the plan was made")
	}
	if saved.OperatorDigest != now.OperatorDigest {
		return fmt.Errorf("the operator state in %s changed since the plan was made", now.StateDir)
	}
	var changed []string
	for _, name := range sortedKeys(now.NodeDigests) {
		if saved.NodeDigests[name] != now.NodeDigests[name] {
			changed = append(changed, name)
		}
	}
	if len(changed) > 0 {
		return fmt.Errorf("node %s changed since the plan was made", strings.Join(changed, ", "))
	}
	return nil
}

// SpecHash is the SHA-256 of the spec's files (names relative to its
// folder, and contents) and the variables given.
func SpecHash(s *Spec, vars map[string]string) string {
	h := sha256.New()
	// Names relative to the spec's folder, however the folder was named
	// (a plan made from "spec" is applied from its absolute path).
	dir, _ := filepath.Abs(s.Dir)
	for _, name := range sortedKeys(s.Files) {
		abs, _ := filepath.Abs(name)
		rel, err := filepath.Rel(dir, abs)
		if err != nil {
			rel = name
		}
		field(h, []byte(filepath.ToSlash(rel)))
		field(h, s.Files[name].Bytes)
	}
	for _, k := range sortedKeys(vars) {
		field(h, []byte(k))
		field(h, []byte(vars[k]))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func field(h hash.Hash, b []byte) {
	_ = binary.Write(h, binary.BigEndian, uint64(len(b)))
	h.Write(b)
}

// Fingerprint is the keyed fingerprint of a secret's content.
func Fingerprint(key, content []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(content)
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

func (st *OpState) digest() string {
	m := hmac.New(sha256.New, st.fingerprintKey)
	field(m, []byte(fmt.Sprint(st.HasCAs, st.CAKeysEncrypted)))
	field(m, st.RouteTrust.PEM())
	field(m, st.ClientTrust.PEM())
	field(m, st.RouteBundle)
	field(m, st.ClientBundle)
	field(m, []byte(st.CAKeyRecipients))
	for _, n := range sortedKeys(st.Leaves) {
		for _, k := range sortedKeys(st.Leaves[n]) {
			l := st.Leaves[n][k]
			field(m, []byte(n+" "+string(k)+" "+l.Problem))
			field(m, l.Cert)
			field(m, l.Key)
		}
	}
	if pw := st.Password; pw != nil {
		field(m, pw.Sealed)
		field(m, []byte(pw.Recipients+pw.Generation))
	}
	for _, n := range sortedKeys(st.Sealed) {
		field(m, []byte(n+" "+st.Sealed[n].Source))
		field(m, st.Sealed[n].Sealed)
	}
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

func (st *NodeState) digest(key []byte) string {
	b, _ := json.Marshal(st) // maps marshal in key order
	return Fingerprint(key, b)
}

// WritePlanFile saves a plan, readable by its owner only.
func WritePlanFile(path string, doc *PlanDoc) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return pki.WriteFileAtomic(path, b.Bytes(), 0o600)
}

// ReadPlanFile reads a saved plan.
func ReadPlanFile(path string) (*PlanDoc, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc PlanDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s is not a unibus plan file: %v", path, err)
	}
	major, _, _ := strings.Cut(doc.FormatVersion, ".")
	if want, _, _ := strings.Cut(PlanFormatVersion, "."); major != want {
		return nil, fmt.Errorf("%s has plan format_version %q; this unibus reads %s.x", path, doc.FormatVersion, want)
	}
	return &doc, nil
}

// Changed says whether the plan changes anything.
func (doc *PlanDoc) Changed() bool { return !doc.Summary.Empty() }
