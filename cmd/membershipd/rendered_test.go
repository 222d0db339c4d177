package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/membershipd"
	"github.com/unibus/unibus/provision"
	"github.com/unibus/unibus/units"
)

// TestRenderedExecStartParses: the ExecStart of every node of the
// local-cluster example, as a service manager merges it (base unit, then
// the cluster drop-in), goes through membershipd's own flag parsing: a
// daemon flag renamed without the renderer following breaks it. And the
// base unit alone, as a node would have it with its drop-in missing, is
// refused before anything binds: a cluster node never starts standalone.
func TestRenderedExecStartParses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, err := os.ReadFile("../../examples/local-cluster/cluster.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.hcl"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	spec, diags := provision.Load(dir, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	// What unibus apply fills in from the operator's identity.
	id, err := client.GenerateIdentity("op")
	if err != nil {
		t.Fatal(err)
	}
	op := id.Age
	spec.Cluster.OperatorRecipients = []age.Recipient{op.Recipient()}
	spec.Cluster.OperatorRecipientStrings = []string{op.Recipient().String()}
	if spec.FirstAdmin, err = id.FirstAdminRecord(); err != nil {
		t.Fatal(err)
	}
	if _, err := provision.PrepareNodes(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	p, err := provision.MakePlan(ctx, spec, provision.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provision.Apply(ctx, p, provision.ApplyOptions{Identities: []age.Identity{op}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range spec.Nodes {
		unit := spec.UnitNameFor(&n)
		u, err := units.LoadExecUnit(n.Target.Root, n.Target.Scope, unit)
		if err != nil {
			t.Fatalf("node %s: %v", n.Name, err)
		}
		argv := u.ExecStart[0].Argv
		cfg, _, err := parseFlags(argv[1:], io.Discard, func(string) string { return "" })
		if err != nil {
			t.Fatalf("node %s: rendered ExecStart %q: %v", n.Name, strings.Join(argv, " "), err)
		}
		if cfg.NodeName != n.Name || cfg.Cluster.Name != spec.Cluster.Name || len(cfg.Cluster.Routes) != 2 || cfg.Cluster.PassFile == "" || cfg.TLSCert == "" || cfg.FirstAdminFile == "" {
			t.Fatalf("node %s: rendered flags read as node %q, cluster %q, routes %q, pass file %q, tls cert %q", n.Name,
				cfg.NodeName, cfg.Cluster.Name, cfg.Cluster.Routes, cfg.Cluster.PassFile, cfg.TLSCert)
		}

		// The base unit alone.
		dropIn := filepath.Join(n.Target.Root, filepath.FromSlash(n.Target.Scope.DropInPath(unit, "cluster.conf")))
		if err := os.Remove(dropIn); err != nil {
			t.Fatal(err)
		}
		u, err = units.LoadExecUnit(n.Target.Root, n.Target.Scope, unit)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, err = parseFlags(u.ExecStart[0].Argv[1:], io.Discard, func(string) string { return "" })
		if err != nil {
			t.Fatalf("node %s: base unit's ExecStart: %v", n.Name, err)
		}
		cfg.StateDir = t.TempDir()
		// The credentials, where the exec manager would have copied them.
		os.MkdirAll(u.CredentialsDir, 0o700)
		for _, c := range u.Credentials {
			data, err := os.ReadFile(c.Path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(u.CredentialsDir, c.ID), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		d, err := membershipd.Open(ctx, cfg)
		if err == nil {
			d.Shutdown()
			t.Fatalf("node %s: its base unit without the cluster drop-in starts a standalone node", n.Name)
		}
		if !strings.Contains(err.Error(), "cluster") {
			t.Fatalf("node %s: base unit alone refused with %q; want a cluster refusal", n.Name, err)
		}
	}
}
