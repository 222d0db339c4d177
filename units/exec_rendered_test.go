package units_test

import (
	"filippo.io/age"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/unibus/unibus/provision"
	"github.com/unibus/unibus/units"
)

// Every unit and drop-in rendered for examples/local-cluster loads under
// the exec manager: nothing unknown, the sandboxing listed as not
// enforced, the cluster drop-in's ExecStart= replacing the base one, the
// credentials of both files and the monitor drop-in's Environment= kept.
func TestExecLoadsRenderedLocalCluster(t *testing.T) {
	spec := t.TempDir()
	files, _ := filepath.Glob(filepath.Join("..", "examples", "local-cluster", "*.hcl"))
	if len(files) == 0 {
		t.Fatal("no spec in examples/local-cluster")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(spec, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, _, diags := provision.LoadFiles(spec, map[string]string{"monitor": "true"})
	if diags.HasErrors() {
		t.Fatalf("spec: %v", diags)
	}
	// The example ships no keys (apply makes them): an operator and each
	// node's recipient, as apply would have them.
	op, _ := age.GenerateX25519Identity()
	s.Cluster.OperatorRecipients = []age.Recipient{op.Recipient()}
	s.Cluster.OperatorRecipientStrings = []string{op.Recipient().String()}
	for i := range s.Nodes {
		id, _ := age.GenerateX25519Identity()
		s.Nodes[i].AgeRecipient = id.Recipient().String()
	}
	d, err := provision.Render(s, provision.RenderOptions{Identities: []age.Identity{op}})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := d.WriteTree(out); err != nil {
		t.Fatal(err)
	}
	for _, n := range d.Nodes {
		u, err := units.LoadExecUnit(filepath.Join(out, n.Node), n.Target.Scope, n.Unit)
		if err != nil {
			t.Fatalf("node %s: %v", n.Node, err)
		}
		if len(u.Files) < 3 {
			t.Errorf("node %s: merged %v, want the unit, cluster.conf and nats-monitor.conf", n.Node, u.Files)
		}
		for _, want := range []string{"ProtectSystem=", "PrivateTmp=", "SystemCallFilter=", "IPAddressDeny=", "PrivateUsers=", "CapabilityBoundingSet="} {
			if !slices.Contains(u.NotEnforced, want) {
				t.Errorf("node %s: %s not listed as not enforced: %v", n.Node, want, u.NotEnforced)
			}
		}
		argv := strings.Join(u.ExecStart[0].Argv, " ")
		if !strings.Contains(argv, "--cluster-pass-file "+filepath.Join(u.CredentialsDir, "cluster-pass.age")) ||
			!strings.Contains(argv, "--state-dir "+filepath.Join(units.StateRoot(filepath.Join(out, n.Node), n.Target.Scope), "membershipd")) {
			t.Errorf("node %s: ExecStart is not the cluster drop-in's with %%d and %%S resolved: %s", n.Node, argv)
		}
		var ids []string
		for _, c := range u.Credentials {
			ids = append(ids, c.ID)
		}
		if !slices.Contains(ids, "client.key") || !slices.Contains(ids, "route.key") || !slices.Contains(ids, "age-identity") || !slices.Contains(ids, "cluster-pass.age") {
			t.Errorf("node %s: credentials %v, want those of the unit and of cluster.conf", n.Node, ids)
		}
		if !slices.Contains(u.Environment, "UNIBUS_NATS_MONITOR=1") || u.Type != "notify" || u.Restart != "on-failure" {
			t.Errorf("node %s: env %v type %s restart %s", n.Node, u.Environment, u.Type, u.Restart)
		}
	}
}
