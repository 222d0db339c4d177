package provision

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/unibus/unibus/pki"
	"github.com/unibus/unibus/units"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// clusterSpec writes a spec of len(nodes) nodes, each on its own loopback
// address (127.0.x.y) with the default ports.
func clusterSpec(t testing.TB, dir, operator string, nodes []string) {
	clusterSpecOn(t, dir, "127.0", operator, nodes)
}

// clusterSpecOn is clusterSpec with addresses net.x.y.
func clusterSpecOn(t testing.TB, dir, net, operator string, nodes []string) {
	t.Helper()
	var b strings.Builder
	kv := 1
	if len(nodes) >= 3 {
		kv = 3
	}
	fmt.Fprintf(&b, "cluster \"test\" {\n  kv_replicas = %d\n  operator_recipients = [%q]\n}\n", kv, operator)
	for i, r := range nodes {
		fmt.Fprintf(&b, "node \"n%d\" {\n  addresses = [\"%s.%d.%d\"]\n  dns = [\"n%d.test\"]\n  age_recipient = %q\n}\n", i+1, net, (i+1)/250, (i+1)%250+1, i+1, r)
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.hcl"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// keysAsApplyWould gives a spec that ships no keys (local-cluster) what
// unibus apply fills in: an operator recipient (the operator's identity)
// and, for a node with no pinned recipient, the recipient of the identity
// apply makes on it. It returns the operator's identity.
func keysAsApplyWould(t *testing.T, s *Spec) []age.Identity {
	t.Helper()
	if len(s.Cluster.OperatorRecipients) > 0 {
		return nil
	}
	op, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	s.Cluster.OperatorRecipients = []age.Recipient{op.Recipient()}
	s.Cluster.OperatorRecipientStrings = []string{op.Recipient().String()}
	for i := range s.Nodes {
		if s.Nodes[i].AgeRecipient == "" {
			id, _ := age.GenerateX25519Identity()
			s.Nodes[i].AgeRecipient = id.Recipient().String()
		}
	}
	return []age.Identity{op}
}

// Every example renders as written (with what apply fills in), and every
// unit it renders passes systemd-analyze verify and round-trips through
// go-systemd's parser.
// exampleKeys are what an operator gives the examples that ship no keys:
// the nodes' recipients of three-hosts (as -var) and an operator identity.
type exampleKeys struct {
	vars map[string]string
	op   *age.X25519Identity
}

func newExampleKeys(t testing.TB) *exampleKeys {
	t.Helper()
	k := &exampleKeys{vars: map[string]string{}}
	for _, n := range []string{"magnus", "homer", "datardos"} {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		k.vars[n] = id.Recipient().String()
	}
	k.op, _ = age.GenerateX25519Identity()
	return k
}

// load reads the example in dir with the keys (and extra variables), the
// operator's recipient filled in as unibus does.
func (k *exampleKeys) load(t testing.TB, dir string, extra map[string]string) (*Spec, []age.Identity) {
	t.Helper()
	vars := map[string]string{}
	for n, v := range k.vars {
		vars[n] = v
	}
	for n, v := range extra {
		vars[n] = v
	}
	s := mustLoad(t, dir, vars)
	if len(s.Cluster.OperatorRecipients) == 0 {
		s.Cluster.OperatorRecipients = []age.Recipient{k.op.Recipient()}
		s.Cluster.OperatorRecipientStrings = []string{k.op.Recipient().String()}
	}
	return s, []age.Identity{k.op}
}

func TestExamplesRender(t *testing.T) {
	examples, _ := filepath.Glob("../examples/*/cluster.hcl")
	if len(examples) != 3 {
		t.Fatalf("found %d examples, want single-node, local-cluster, three-hosts", len(examples))
	}
	for _, ex := range examples {
		name := filepath.Base(filepath.Dir(ex))
		t.Run(name, func(t *testing.T) {
			dir := copySpec(t, filepath.Dir(ex))
			vars := map[string]string{}
			if name == "three-hosts" {
				vars = newExampleKeys(t).vars
			}
			spec := mustLoad(t, dir, vars)
			d := mustRender(t, spec, RenderOptions{Identities: keysAsApplyWould(t, spec)})
			out := t.TempDir()
			if err := d.WriteTree(out); err != nil {
				t.Fatal(err)
			}
			verifyUnits(t, out, d)
			for _, n := range d.Nodes {
				for _, f := range unitFiles(n) {
					parsed, err := units.Parse(f.Content)
					if err != nil {
						t.Fatalf("%s %s: %v", n.Node, f.Path, err)
					}
					again, err := parsed.Bytes()
					if err != nil || !bytes.Equal(again, f.Content) {
						t.Fatalf("%s %s does not round-trip (err %v):\n%s\n---\n%s", n.Node, f.Path, err, f.Content, again)
					}
				}
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(ex), "README.md")); err != nil {
				t.Errorf("example %s has no README.md", name)
			}
		})
	}
}

// The system-scope unit of three-hosts, with its drop-ins, scores at most
// 1.0 in systemd-analyze security --offline=true.
func TestThreeHostsSecurityScore(t *testing.T) {
	spec, ids := newExampleKeys(t).load(t, copySpec(t, "../examples/three-hosts"), nil)
	d := mustRender(t, spec, RenderOptions{Identities: ids})
	out := t.TempDir()
	if err := d.WriteTree(out); err != nil {
		t.Fatal(err)
	}
	for _, n := range d.Nodes {
		exp, err := units.Security(context.Background(), filepath.Join(out, n.Node), units.System, n.Unit)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: exposure %.1f", n.Node, exp.Score)
		if exp.Score > 1.0 {
			t.Fatalf("%s scores %.1f, want <= 1.0:\n%s", n.Node, exp.Score, exp.Report)
		}
	}
}

// The units of three-hosts are fixed by the spec alone: compare them with
// the golden files (go test ./provision -run Golden -update rewrites them).
func TestThreeHostsGolden(t *testing.T) {
	spec, ids := newExampleKeys(t).load(t, copySpec(t, "../examples/three-hosts"), nil)
	d := mustRender(t, spec, RenderOptions{Identities: ids})
	n := d.Node("magnus")
	files := unitFiles(*n)
	if len(files) != 3 {
		t.Fatalf("magnus has %d unit files, want the unit, cluster.conf and nats-monitor.conf", len(files))
	}
	for _, f := range files {
		golden := filepath.Join("testdata", "golden", "three-hosts", "magnus", filepath.FromSlash(f.Path))
		if *update {
			if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, f.Content, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if !bytes.Equal(f.Content, want) {
			t.Errorf("%s differs from %s:\n%s", f.Path, golden, f.Content)
		}
	}
}

// Rendering twice gives the same files byte for byte; asking for a new
// cluster password changes the sealed copies and nothing else.
func TestRenderTwiceIdentical(t *testing.T) {
	dir := copySpec(t, "../examples/three-hosts")
	keys := newExampleKeys(t)
	spec, ids := keys.load(t, dir, nil)
	first := mustRender(t, spec, RenderOptions{Identities: ids})
	outA, outB := t.TempDir(), t.TempDir()
	if err := first.WriteTree(outA); err != nil {
		t.Fatal(err)
	}
	again, _ := keys.load(t, dir, nil)
	second := mustRender(t, again, RenderOptions{})
	if !second.Equal(first) {
		t.Fatal("second render differs from the first")
	}
	if err := second.WriteTree(outB); err != nil {
		t.Fatal(err)
	}
	a, b := readTree(t, outA), readTree(t, outB)
	if len(a) != len(b) || len(a) < 30 {
		t.Fatalf("trees hold %d and %d files", len(a), len(b))
	}
	for p, content := range a {
		if b[p] != content {
			t.Errorf("%s differs between two renders", p)
		}
	}

	third, _ := keys.load(t, dir, nil)
	rotated := mustRender(t, third, RenderOptions{RotateClusterPass: true, Identities: ids})
	for i, n := range rotated.Nodes {
		for j, f := range n.Files {
			same := bytes.Equal(f.Content, first.Nodes[i].Files[j].Content)
			if strings.HasSuffix(f.Path, ".age") == same {
				t.Errorf("after rotation %s %s: changed = %v", n.Node, f.Path, !same)
			}
		}
	}
}

// The cluster password: the real age CLI opens a node's cluster-pass.age
// with that node's identity (and not with another node's), the operator's
// copy opens with the operator's identity, and no rendered file other than
// the .age ones holds the password. Secrets are 0600, no CA key leaves
// the operator.
func TestClusterPasswordSealedPerNode(t *testing.T) {
	dir := t.TempDir()
	keys := t.TempDir()
	op := newKey(t, keys, "operator")
	var nodes []keypair
	var recips []string
	for i := range 3 {
		k := newKey(t, keys, fmt.Sprintf("n%d", i+1))
		nodes = append(nodes, k)
		recips = append(recips, k.recipient)
	}
	clusterSpec(t, dir, op.recipient, recips)
	spec := mustLoad(t, dir, nil)
	d := mustRender(t, spec, RenderOptions{})
	out := t.TempDir()
	if err := d.WriteTree(out); err != nil {
		t.Fatal(err)
	}

	password, err := ageDecrypt(t, op.file, filepath.Join(spec.Cluster.StateDir, "cluster-pass.age"))
	if err != nil {
		t.Fatalf("operator copy: %v", err)
	}
	if len(password) < 40 {
		t.Fatalf("cluster password is %d characters, want a 256-bit random one", len(password))
	}
	for i, n := range d.Nodes {
		sealed := filepath.Join(out, n.Node, "etc", "unibus", "cluster-pass.age")
		got, err := ageDecrypt(t, nodes[i].file, sealed)
		if err != nil || got != password {
			t.Fatalf("age -d -i %s.key %s: %q, %v; want the cluster password", n.Node, sealed, got, err)
		}
		other := nodes[(i+1)%len(nodes)]
		if _, err := ageDecrypt(t, other.file, sealed); err == nil {
			t.Fatalf("%s's cluster-pass.age opens with another node's identity", n.Node)
		}
	}

	route, client, err := pki.Dir(spec.Cluster.PKI.Dir).Trust()
	if err != nil {
		t.Fatal(err)
	}
	caKeys := [][]byte{route.Active().RawSubjectPublicKeyInfo, client.Active().RawSubjectPublicKeyInfo}
	files := 0
	for p, content := range readTree(t, out) {
		files++
		mode, body, _ := strings.Cut(content, "\n")
		if !strings.HasSuffix(p, ".age") && strings.Contains(body, password) {
			t.Errorf("%s holds the cluster password", p)
		}
		if strings.HasSuffix(p, ".key") || strings.HasSuffix(p, ".age") {
			if mode != "-rw-------" {
				t.Errorf("%s has mode %s, want -rw-------", p, mode)
			}
		}
		if strings.Contains(body, "PRIVATE KEY") {
			block, _ := pem.Decode([]byte(body))
			key, err := pki.ParseKey(pem.EncodeToMemory(block))
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			pub, _ := x509.MarshalPKIXPublicKey(key.Public())
			for _, ca := range caKeys {
				if bytes.Equal(pub, ca) {
					t.Fatalf("%s is a CA private key", p)
				}
			}
		}
		if strings.Contains(p, "-ca.") && strings.Contains(body, "PRIVATE") {
			t.Errorf("%s: a CA file with a private key", p)
		}
	}
	if files != 3*9+1 {
		t.Fatalf("rendered %d files, want 9 per node and the render marker", files)
	}
	// Where the password and the identity reach the service: credentials.
	for _, n := range d.Nodes {
		for _, f := range unitFiles(n) {
			u, err := units.Parse(f.Content)
			if err != nil {
				t.Fatal(err)
			}
			for _, exec := range u.Values("Service", "ExecStart") {
				if strings.Contains(exec, "--cluster-pass ") || strings.Contains(exec, "@") {
					t.Errorf("%s: ExecStart carries a secret: %s", f.Path, exec)
				}
			}
			if creds := strings.Join(u.Values("Service", "LoadCredential"), " "); strings.HasSuffix(f.Path, "cluster.conf") &&
				!strings.Contains(creds, "age-identity:/etc/unibus/age-identity") {
				t.Errorf("%s: no age-identity credential in %q", f.Path, creds)
			}
		}
	}
}

// A node added later needs its sealed password and certificates, which
// need the operator's identity; the nodes already rendered do not change.
func TestNewNodeNeedsOperatorIdentity(t *testing.T) {
	dir, keys := t.TempDir(), t.TempDir()
	op := newKey(t, keys, "operator")
	var recips []string
	for i := range 4 {
		recips = append(recips, newKey(t, keys, fmt.Sprintf("n%d", i+1)).recipient)
	}
	clusterSpec(t, dir, op.recipient, recips[:3])
	before := mustRender(t, mustLoad(t, dir, nil), RenderOptions{})

	clusterSpec(t, dir, op.recipient, recips)
	spec := mustLoad(t, dir, nil)
	_, err := Render(spec, RenderOptions{})
	if !errors.Is(err, ErrNeedIdentity) {
		t.Fatalf("Render with a new node and no identity = %v, want ErrNeedIdentity", err)
	}
	after := mustRender(t, spec, RenderOptions{Identities: []age.Identity{op.id}})
	if len(after.Nodes) != 4 {
		t.Fatalf("rendered %d nodes, want 4", len(after.Nodes))
	}
	for _, old := range before.Nodes {
		now := after.Node(old.Node)
		for _, f := range old.Files {
			if strings.Contains(f.Path, "systemd/") {
				continue // routes and the IP allow list name the new peer
			}
			if g := now.File(f.Path); g == nil || !bytes.Equal(g.Content, f.Content) {
				t.Errorf("%s %s changed when n4 joined", old.Node, f.Path)
			}
		}
	}
	if u := after.Node("n1").File("etc/systemd/system/membershipd-cluster.service.d/cluster.conf"); u == nil || !bytes.Contains(u.Content, []byte("nats://n4.test:6250")) {
		t.Errorf("n1's routes do not name n4")
	}
}

// A large cluster's lists stay within what systemd and go-systemd read:
// IPAddressAllow= over several lines, --routes bounded to the seeds.
func TestLargeClusterUnits(t *testing.T) {
	dir, keys := t.TempDir(), t.TempDir()
	op := newKey(t, keys, "operator")
	var recips []string
	for i := range 40 {
		recips = append(recips, newKey(t, keys, fmt.Sprintf("n%d", i+1)).recipient)
	}
	clusterSpecOn(t, dir, "10.1", op.recipient, recips)
	d := mustRender(t, mustLoad(t, dir, nil), RenderOptions{})
	out := t.TempDir()
	if err := d.WriteTree(out); err != nil {
		t.Fatal(err)
	}
	n := d.Node("n40")
	unit, err := units.Parse(n.File("etc/systemd/system/membershipd-cluster.service").Content)
	if err != nil {
		t.Fatal(err)
	}
	allow := unit.Values("Service", "IPAddressAllow")
	if len(allow) != 2 || len(strings.Fields(strings.Join(allow, " "))) != 41 {
		t.Fatalf("IPAddressAllow= lines %q, want localhost and 40 addresses over 2 lines", allow)
	}
	dropIn, err := units.Parse(n.File("etc/systemd/system/membershipd-cluster.service.d/cluster.conf").Content)
	if err != nil {
		t.Fatal(err)
	}
	exec := dropIn.Values("Service", "ExecStart")[1]
	_, routes, _ := strings.Cut(exec, "--routes ")
	routes, _, _ = strings.Cut(routes, " ")
	if got := len(strings.Split(routes, ",")); got != maxSeeds+1 {
		t.Fatalf("n40 dials %d routes, want the %d seeds", got, maxSeeds+1)
	}
	verifyUnits(t, out, &Desired{Unit: d.Unit, Nodes: []NodeFiles{*n}})
}
