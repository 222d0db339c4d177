package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/provision"
	"github.com/unibus/unibus/units"
)

func newDownCmd(ui cli.UI) *cobra.Command {
	vars := varFlag{}
	cmd := &cobra.Command{
		Use:   "down [-var name=value]... [SPEC]",
		Short: "Stop the services of the spec's nodes (exec or systemd manager)",
		Long: `Down stops every node's membershipd that unibus's own supervisor
(manager = "exec") runs: KillSignal, then SIGKILL after TimeoutStopSec. Files,
state and identities stay; unibus apply starts the nodes again.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, _, err := specFromArgs(ui, cmd, args, vars)
			if err != nil {
				return err
			}
			access().preconnect(spec)
			lock, err := provision.AcquireLock(spec.Cluster.StateDir, "down", 0)
			if err != nil {
				return cli.WithHint(err, "an apply is running; let it finish first")
			}
			defer lock.Release()
			stopped := 0
			for i := range spec.Nodes {
				n := &spec.Nodes[i]
				unit := spec.UnitNameFor(n)
				m, err := managerFor(n)
				if err != nil {
					ui.Warnf("%s: not stopped: %v", n.Name, err)
					continue
				}
				st, err := m.Status(cmd.Context(), unit)
				if err != nil {
					return fmt.Errorf("node %s: %w", n.Name, err)
				}
				if st.ActiveState == units.StateInactive {
					continue
				}
				if err := m.Stop(cmd.Context(), unit); err != nil {
					return fmt.Errorf("node %s: stop %s: %w", n.Name, unit, err)
				}
				ui.Printf("%s: stopped %s", n.Name, unit)
				stopped++
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Down complete: %d node(s) stopped.\n", stopped)
			return nil
		},
	}
	addVarFlags(cmd, vars)
	return cmd
}
