package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/templates"
)

func newInitCmd(ui cli.UI) *cobra.Command {
	var cluster string
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Write a commented starter cluster spec",
		Long: `Init writes DIR/cluster.hcl (DIR defaults to the current folder): a commented
single-node spec that renders as written, with the blocks a cluster adds shown
in comments, and a .gitignore that keeps the operator state (.unibus/) out of
git. It refuses a folder that already holds a spec.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			if cluster == "" {
				cluster = clusterNameFor(dir)
			}
			if !regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`).MatchString(cluster) {
				return cli.Usagef("--cluster %q: lower-case letters, digits and '-'", cluster)
			}
			existing, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
			if len(existing) > 0 {
				return cli.WithHint(fmt.Errorf("%s already holds a spec (%s); not overwriting it", dir, filepath.Base(existing[0])),
					"edit it, or run unibus init in a new folder")
			}
			starter, err := templates.Execute(templates.Starter, struct{ Cluster string }{cluster})
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			spec := filepath.Join(dir, "cluster.hcl")
			f, err := os.OpenFile(spec, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			if _, err := f.Write(starter); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", spec)
			return ensureGitignore(ui, cmd, dir)
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "cluster name (default: the folder's name)")
	return cmd
}

// ensureGitignore keeps the operator state out of git: it holds node keys
// in the clear and the CA keys.
func ensureGitignore(ui cli.UI, cmd *cobra.Command, dir string) error {
	path := filepath.Join(dir, ".gitignore")
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.WriteFile(path, []byte("# unibus operator state: CA keys, node keys, the sealed cluster password\n.unibus/\n"), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", path)
	case err != nil:
		return err
	case !strings.Contains(string(data), ".unibus/"):
		ui.Warnf("%s does not ignore .unibus/; add it: it holds the node keys and the CA keys", path)
	}
	return nil
}

// clusterNameFor makes a cluster name of a folder's name.
func clusterNameFor(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "unibus"
	}
	name := strings.Trim(regexp.MustCompile(`[^a-z0-9-]+`).ReplaceAllString(strings.ToLower(filepath.Base(abs)), "-"), "-")
	if name == "" || len(name) > 63 {
		return "unibus"
	}
	return name
}
