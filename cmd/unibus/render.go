package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/pki"
	"github.com/unibus/unibus/provision"
)

func newRenderCmd(ui cli.UI) *cobra.Command {
	var (
		out        string
		identities []string
		rotate     bool
		vars       = varFlag{}
	)
	cmd := &cobra.Command{
		Use:   "render --out DIR [-var name=value]... [SPEC]",
		Short: "Write every node's files (units, drop-ins, certificates, sealed password) to a folder",
		Long: `Render reads the cluster spec (SPEC: a .hcl file or a folder of them; default
the current folder) and writes, for every node, the exact files it must have
under DIR/<node>/, with their final modes. It touches no node.

It keeps the operator state beside the spec (state_dir, default .unibus): the
CAs are created on the first render, certificates issued or renewed when due,
and the cluster password generated once and sealed to each node. Rendering
again gives the same bytes. --age-identity (an operator identity) is needed
only when a certificate must be signed with an encrypted CA key or the
password sealed to a new node.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			rest, err := parseSpecFlags(cmd, args)
			if err != nil {
				return err
			}
			if out == "" {
				return cli.WithHint(cli.Usagef("--out is required"), "give the folder to write the nodes' files to, e.g. --out rendered")
			}
			specPath, err := specArg(rest)
			if err != nil {
				return err
			}
			spec, err := loadSpec(ui, specPath, vars)
			if err != nil {
				return err
			}
			op, _, err := loadOperator(ui, false)
			if err != nil {
				return err
			}
			ids, err := withOperator(spec, op)
			if err != nil {
				return err
			}
			more, err := pki.ReadIdentityFiles(identities)
			if err != nil {
				return err
			}
			ids = append(ids, more...)
			d, err := provision.Render(spec, provision.RenderOptions{Identities: ids, RotateClusterPass: rotate,
				Warn: func(s string) { ui.Warnf("%s", s) }})
			switch {
			case errors.Is(err, provision.ErrNeedIdentity):
				return cli.WithHint(err, "pass --age-identity FILE with the identity of one of operator_recipients")
			case err != nil:
				return err
			}
			if err := d.WriteTree(out); err != nil {
				if errors.Is(err, provision.ErrNotRenderDir) {
					return cli.WithHint(err, "give --out an empty or new folder; render replaces only a folder it wrote")
				}
				return err
			}
			w := cmd.OutOrStdout()
			for _, n := range d.Nodes {
				fmt.Fprintf(w, "%s: %d files\n", filepath.Join(out, n.Node), len(n.Files))
			}
			if rotate {
				ui.Printf("new cluster password generated; every node needs its new cluster-pass.age and a restart")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "folder to write DIR/<node>/... into (empty, new, or an earlier render's)")
	addVarFlags(cmd, vars)
	f.StringArrayVar(&identities, "age-identity", nil, "operator age identity file, to sign or seal anew (repeatable)")
	f.BoolVar(&rotate, "rotate-cluster-pass", false, "generate a new cluster password")
	return cmd
}

// specFromArgs is the start of every spec command: its flags parsed, the
// SPEC argument, the spec loaded.
func specFromArgs(ui cli.UI, cmd *cobra.Command, args []string, vars varFlag) (*provision.Spec, string, error) {
	rest, err := parseSpecFlags(cmd, args)
	if err != nil {
		return nil, "", err
	}
	specPath, err := specArg(rest)
	if err != nil {
		return nil, "", err
	}
	spec, err := loadSpec(ui, specPath, vars)
	return spec, specPath, err
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// specArg is the SPEC argument: a file or folder, the current folder by
// default.
func specArg(args []string) (string, error) {
	switch len(args) {
	case 0:
		return ".", nil
	case 1:
		return args[0], nil
	}
	return "", cli.Usagef("more than one SPEC given (%q); give one file or folder", args)
}

// loadSpec loads a spec and prints its diagnostics as hcl's text writer
// does; errors end the command with one line saying how many.
func loadSpec(ui cli.UI, path string, vars map[string]string) (*provision.Spec, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, cli.WithHint(fmt.Errorf("spec %s: %w", path, unwrapPathErr(err)), "give a .hcl file or a folder of .hcl files (SPEC defaults to the current folder)")
	}
	spec, srcs, diags := provision.LoadFiles(path, vars)
	if len(diags) > 0 {
		_ = provision.WriteDiagnostics(ui.W, srcs, diags)
	}
	if diags.HasErrors() {
		n := 0
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				n++
			}
		}
		return nil, cli.WithHint(fmt.Errorf("spec %s: %d error(s)", path, n), "fix the lines shown above; every problem found is listed")
	}
	return spec, nil
}
