package provision

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/unibus/unibus/pki"
)

// rootedSpec writes a cluster spec whose nodes live under dir/roots/<name>
// (so plan observes folders of the test, never /). recipients[i] == ""
// leaves node i without a pin.
func rootedSpec(t testing.TB, dir, operator string, recipients []string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "variable \"monitor\" {\n  default = false\n}\ncluster \"test\" {\n  monitor = var.monitor\n  kv_replicas = %d\n  operator_recipients = [%q]\n}\n",
		map[bool]int{true: 3, false: 1}[len(recipients) >= 3], operator)
	for i, r := range recipients {
		pin := ""
		if r != "" {
			pin = fmt.Sprintf("  age_recipient = %q\n", r)
		}
		fmt.Fprintf(&b, "node \"n%d\" {\n  addresses = [\"10.1.%d.%d\"]\n  dns = [\"n%d.test\"]\n%s  target {\n    root = \"roots/n%d\"\n  }\n}\n",
			i+1, (i+1)/250, (i+1)%250+1, i+1, pin, i+1)
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.hcl"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// install writes every node's files under its root, as apply would.
func install(t testing.TB, d *Desired) {
	t.Helper()
	for _, n := range d.Nodes {
		for _, f := range n.Files {
			p := filepath.Join(n.Target.Root, filepath.FromSlash(f.Path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, f.Content, f.Mode); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// writeIdentity puts a node's age identity where apply will create it.
func writeIdentity(t testing.TB, target Target, k keypair) {
	t.Helper()
	p := filepath.Join(target.Root, filepath.FromSlash(AgeIdentityPath(target)))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(k.id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func plan(t testing.TB, s *Spec, nodes map[string]*NodeState, now time.Time) (*Desired, []OpChange) {
	t.Helper()
	op, err := ObserveOperator(s)
	if err != nil {
		t.Fatal(err)
	}
	d, changes, err := Plan(PlanInput{Spec: s, Operator: op, Nodes: nodes, Now: now})
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return d, changes
}

func changeLines(cs []OpChange) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

type fixture struct {
	dir   string
	op    keypair
	nodes []keypair
	spec  *Spec
}

func newFixture(t *testing.T, n int, pin bool) *fixture {
	dir, keys := t.TempDir(), t.TempDir()
	f := &fixture{dir: dir, op: newKey(t, keys, "operator")}
	var recips []string
	for i := range n {
		k := newKey(t, keys, fmt.Sprintf("n%d", i+1))
		f.nodes = append(f.nodes, k)
		recips = append(recips, map[bool]string{true: k.recipient}[pin])
	}
	rootedSpec(t, dir, f.op.recipient, recips)
	f.spec = mustLoad(t, dir, nil)
	return f
}

// From nothing, the plan is every CA, leaf and seal, in order, and every
// certificate and sealed file is known only after apply.
func TestPlanFromNothing(t *testing.T) {
	f := newFixture(t, 3, true)
	d, changes := plan(t, f.spec, nil, time.Now())
	sameLines(t, "changes", changeLines(changes), []string{
		"create the route CA and the client CA (no CA in " + string(f.spec.Cluster.PKI.Dir) + ")",
		"issue the route certificate of n1 (missing)", "issue the server certificate of n1 (missing)",
		"issue the route certificate of n2 (missing)", "issue the server certificate of n2 (missing)",
		"issue the route certificate of n3 (missing)", "issue the server certificate of n3 (missing)",
		"generate the cluster password (none yet)",
		"seal the cluster password to n1 (new cluster password)",
		"seal the cluster password to n2 (new cluster password)",
		"seal the cluster password to n3 (new cluster password)",
	})
	if c := changes[8]; c.Recipient != f.nodes[0].recipient {
		t.Errorf("n1 sealed to %q, want its pin", c.Recipient)
	}
	pending := 0
	for _, fl := range d.Node("n1").Files {
		if fl.Pending != "" {
			pending++
			if fl.Content != nil {
				t.Errorf("%s is pending and has content", fl.Path)
			}
		}
	}
	if pending != 7 {
		t.Errorf("n1 has %d pending files, want 7 (4 leaf files, 2 bundles, the sealed password)", pending)
	}
	if _, err := os.Stat(f.spec.Cluster.StateDir); err == nil {
		t.Fatal("planning created the state folder")
	}
}

// After Execute (render), planning again needs nothing and gives the very
// files Execute returned.
func TestPlanAfterExecuteIsEmpty(t *testing.T) {
	f := newFixture(t, 3, true)
	rendered := mustRender(t, f.spec, RenderOptions{})
	d, changes := plan(t, f.spec, nil, time.Now())
	if len(changes) != 0 {
		t.Fatalf("changes after render: %q", changeLines(changes))
	}
	if !d.Equal(rendered) {
		t.Fatal("plan after render differs from render's files")
	}
}

// Operators changed: the CA keys and the operators' copy are resealed to
// the new set, and no node's file changes (no needless restart). The new
// operator opens the CA keys; the old one no longer does.
func TestOperatorRecipientsChangedReseals(t *testing.T) {
	f := newFixture(t, 3, true)
	before := mustRender(t, f.spec, RenderOptions{})
	op2 := newKey(t, t.TempDir(), "operator2")
	rootedSpec(t, f.dir, op2.recipient, []string{f.nodes[0].recipient, f.nodes[1].recipient, f.nodes[2].recipient})
	spec := mustLoad(t, f.dir, nil)

	d, changes := plan(t, spec, nil, time.Now())
	sameLines(t, "changes", changeLines(changes), []string{
		"reseal the CA keys to operator_recipients (operator_recipients changed)",
		"reseal the operators' copy of the cluster password (operator_recipients changed)",
	})
	if !d.Equal(before) {
		t.Fatal("resealing for the operators changes a node's files")
	}
	after := mustRender(t, spec, RenderOptions{Identities: []age.Identity{f.op.id}})
	if !after.Equal(before) {
		t.Fatal("after the reseal a node's files differ")
	}
	if _, changes := plan(t, spec, nil, time.Now()); len(changes) != 0 {
		t.Fatalf("changes after the reseal: %q", changeLines(changes))
	}
	dir := spec.Cluster.PKI.Dir
	if _, err := dir.LoadCAs(op2.id); err != nil {
		t.Fatalf("the new operator cannot open the CA keys: %v", err)
	}
	if _, err := dir.LoadCAs(f.op.id); err == nil {
		t.Fatal("the old operator still opens the CA keys")
	}
	sealed, _ := os.ReadFile(filepath.Join(spec.Cluster.StateDir, "cluster-pass.age"))
	if _, err := pki.DecryptKey(sealed, op2.id); err != nil {
		t.Fatalf("the new operator cannot open the cluster password: %v", err)
	}
}

// The node's identity decides whom its copy is sealed to: it must match a
// pin; without a pin it is used as found; without either, the sealed file
// is known after apply and no seal is planned.
func TestPlanNodeIdentity(t *testing.T) {
	f := newFixture(t, 3, true)
	mustRender(t, f.spec, RenderOptions{})
	obs := map[string]*NodeState{"n2": {Node: "n2", Recipient: f.nodes[0].recipient, IdentityPath: "/x/age-identity"}}
	op, _ := ObserveOperator(f.spec)
	_, _, err := Plan(PlanInput{Spec: f.spec, Operator: op, Nodes: obs, Now: time.Now()})
	if err == nil || !strings.HasPrefix(err.Error(), "node n2: its age identity (/x/age-identity) has recipient "+f.nodes[0].recipient) {
		t.Fatalf("a pin mismatch gave %v", err)
	}

	// n2 unpinned and observed with another identity, n3 unpinned and
	// without one.
	rootedSpec(t, f.dir, f.op.recipient, []string{f.nodes[0].recipient, "", ""})
	spec := mustLoad(t, f.dir, nil)
	other := newKey(t, t.TempDir(), "other")
	obs = map[string]*NodeState{"n2": {Node: "n2", Recipient: other.recipient}, "n3": {Node: "n3"}}
	d, changes := plan(t, spec, obs, time.Now())
	sameLines(t, "changes", changeLines(changes), []string{"seal the cluster password to n2 (recipient changed)"})
	if changes[0].Recipient != other.recipient {
		t.Fatalf("n2 sealed to %q, want its identity's recipient", changes[0].Recipient)
	}
	if p := d.Node("n3").File(".config/unibus/cluster-pass.age"); p != nil {
		t.Fatalf("system scope node has a user-scope file")
	}
	if p := d.Node("n3").File("etc/unibus/cluster-pass.age"); p == nil || p.Pending == "" {
		t.Fatalf("n3's sealed password without an identity = %+v, want pending", p)
	}
	if _, err := Render(spec, RenderOptions{Identities: []age.Identity{f.op.id}}); err == nil ||
		!strings.Contains(err.Error(), "node n2: no age recipient to seal the cluster password to") {
		t.Fatalf("render of unpinned nodes = %v, want the no-recipient error", err)
	}
}

// A certificate inside its renew window is renewed, and says so.
func TestPlanRenewWindow(t *testing.T) {
	f := newFixture(t, 3, true)
	mustRender(t, f.spec, RenderOptions{})
	op, _ := ObserveOperator(f.spec)
	notAfter := op.Leaves["n2"][pki.KindRoute].Parsed.NotAfter
	now := notAfter.Add(-12*pki.Day - time.Hour)
	d, changes := plan(t, f.spec, nil, now)
	var n2 []string
	for _, c := range changes {
		if c.Node == "n2" {
			n2 = append(n2, c.String())
		}
	}
	sameLines(t, "n2's changes", n2, []string{
		"issue the route certificate of n2 (expires in 12 d < renew window 30 d)",
		"issue the server certificate of n2 (expires in 12 d < renew window 30 d)",
	})
	if f := d.Node("n2").File("etc/unibus/tls/route.crt"); f.Pending != "renew: expires in 12 d < renew window 30 d" {
		t.Fatalf("route.crt pending = %q", f.Pending)
	}
	if len(changes) != 6 {
		t.Fatalf("%d changes, want every node's two leaves: %q", len(changes), changeLines(changes))
	}
}

// snapshotTree records every entry under dir with its mode, size, mtime
// and content hash.
func snapshotTree(t testing.TB, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		sum := [32]byte{}
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum = sha256.Sum256(data)
		}
		fmt.Fprintf(&b, "%s %s %d %d %x\n", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// MakePlan changes nothing anywhere: the spec folder, its state folder
// and every node root (all under f.dir) are identical before and after a
// plan that has changes; and the plan's output holds no secret.
func TestMakePlanReadOnlyAndSecretFree(t *testing.T) {
	f := newFixture(t, 3, true)
	install(t, mustRender(t, f.spec, RenderOptions{}))
	for i, k := range f.nodes {
		writeIdentity(t, f.spec.Nodes[i].Target, k)
	}
	// Something to change: the monitor drop-in, a node's unit edited by
	// hand, a sealed file replaced, a key's mode loosened.
	spec := mustLoad(t, f.dir, map[string]string{"monitor": "true"})
	root1 := filepath.Join(f.dir, "roots", "n1")
	unit := filepath.Join(root1, "etc/systemd/system/membershipd-n1.service")
	data, _ := os.ReadFile(unit)
	if err := os.WriteFile(unit, bytes.Replace(data, []byte("Restart=on-failure"), []byte("Restart=no"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root1, "etc/unibus/cluster-pass.age"), []byte("tampered\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root1, "etc/unibus/tls/route.key"), 0o644); err != nil {
		t.Fatal(err)
	}

	before := snapshotTree(t, f.dir)
	p, err := MakePlan(context.Background(), spec, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after := snapshotTree(t, f.dir); after != before {
		t.Fatal("plan changed files under the spec folder, its state or a node root")
	}

	n1 := p.Doc.Nodes[0]
	var lines []string
	for _, c := range n1.Changes {
		lines = append(lines, c.Action+" "+c.Path+" "+strings.Join(c.Reasons, "; "))
	}
	sameLines(t, "n1's changes", lines, []string{
		"change etc/systemd/system/membershipd-n1.service content changed",
		"add etc/systemd/system/membershipd-n1.service.d/nats-monitor.conf ",
		"change etc/unibus/cluster-pass.age content changed",
		"change etc/unibus/tls/route.key mode changed (0644 -> 0600)",
	})
	sameLines(t, "n1's restart", n1.Restart.Reasons, []string{"unit changed", "drop-in added: nats-monitor.conf", "cluster-pass.age: content changed", "route.key: mode changed (0644 -> 0600)"})
	if !slices.Contains(n1.UnitDiff, "- Restart=no") || !slices.Contains(n1.UnitDiff, "+ Restart=on-failure") {
		t.Fatalf("effective unit diff misses the edit:\n%s", strings.Join(n1.UnitDiff, "\n"))
	}
	if sum := Summarize(p.Doc.Nodes, p.Changes); sum != (Summary{Add: 3, Change: 3, Restart: 3}) {
		t.Fatalf("summary %+v", sum)
	}
	if fp := n1.Changes[2].Fingerprint; !strings.HasPrefix(fp, "hmac-sha256:") || n1.Changes[2].SHA256 != "" {
		t.Fatalf("secret change carries %q / %q, want a keyed fingerprint only", fp, n1.Changes[2].SHA256)
	}

	var text bytes.Buffer
	if err := p.Doc.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(p.Doc)
	password, err := ageDecrypt(t, f.op.file, filepath.Join(spec.Cluster.StateDir, "cluster-pass.age"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{password, "PRIVATE KEY", "AGE-SECRET-KEY", "BEGIN AGE"}
	for _, n := range p.Desired.Nodes {
		for _, fl := range n.Files {
			if fl.Secret {
				sum := sha256.Sum256(fl.Content)
				secrets = append(secrets, fmt.Sprintf("%x", sum)) // a plain hash would let a guess be checked
				for _, line := range strings.Split(string(fl.Content), "\n") {
					if len(line) > 20 && !strings.HasPrefix(line, "-----") {
						secrets = append(secrets, line)
					}
				}
			}
		}
	}
	for _, s := range secrets {
		if strings.Contains(text.String(), s) || bytes.Contains(js, []byte(s)) {
			t.Fatalf("the plan shows secret material %.12q...", s)
		}
	}
}

// A saved plan is stale once the spec, the operator state or a node
// changes, and the reason names which; the service hook's report is part
// of what was observed and can ask for a start.
func TestSavedPlanStale(t *testing.T) {
	f := newFixture(t, 3, true)
	install(t, mustRender(t, f.spec, RenderOptions{}))
	ctx := context.Background()
	active := "active"
	hook := ObserveOptions{Service: func(_ context.Context, n *Node, unit string) (*ServiceState, error) {
		st := "active"
		if n.Name == "n3" {
			st = active
		}
		return &ServiceState{ActiveState: st, Manager: "exec", ManagerVersion: "test"}, nil
	}}
	saved, err := MakePlan(ctx, f.spec, PlanOptions{Observe: hook})
	if err != nil {
		t.Fatal(err)
	}
	if saved.Doc.Changed() {
		t.Fatalf("installed cluster has changes: %+v", saved.Doc.Summary)
	}
	again := func(vars map[string]string) *Planned {
		p, err := MakePlan(ctx, mustLoad(t, f.dir, vars), PlanOptions{Vars: vars, Observe: hook})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := again(nil).Stale(saved.Doc); err != nil {
		t.Fatalf("unchanged: %v", err)
	}
	if err := again(map[string]string{"monitor": "true"}).Stale(saved.Doc); err == nil || !strings.Contains(err.Error(), "the spec (or a -var) changed") {
		t.Fatalf("after a -var: %v", err)
	}
	cert := filepath.Join(f.dir, "roots", "n2", "etc/unibus/tls/route.crt")
	if err := os.Chmod(cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := again(nil).Stale(saved.Doc); err == nil || err.Error() != "node n2 changed since the plan was made" {
		t.Fatalf("after a node changed: %v", err)
	}
	if err := os.Chmod(cert, 0o644); err != nil {
		t.Fatal(err)
	}
	active = "failed"
	p := again(nil)
	if err := p.Stale(saved.Doc); err == nil || err.Error() != "node n3 changed since the plan was made" {
		t.Fatalf("after a service failed: %v", err)
	}
	if r := p.Doc.Nodes[2].Restart; r == nil || r.Action != "start" || !slices.Equal(r.Reasons, []string{"service is failed"}) {
		t.Fatalf("a failed service: restart %+v, want a start", r)
	}
}
