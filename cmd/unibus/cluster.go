package main

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/cli"
)

// newClusterCmd is the by-hand form of what a rollout does to each node:
// unibus cluster drain. Its answer is the node's JSON report.
func newClusterCmd(ui cli.UI) *cobra.Command {
	var bf busFlags
	cmd := &cobra.Command{Use: "cluster", Short: "Operate on one node of a running cluster"}
	bf.register(cmd, false)

	var o client.DrainOptions
	drain := &cobra.Command{
		Use:   "drain [--dry-run] [--force] [--lame-duck] [--timeout D]",
		Short: "Move every stream and meta leadership off the node at --server before its restart (admins only)",
		Long: "Move every JetStream stream, consumer and meta leadership the node at --server holds to other nodes and\n" +
			"confirm the new leaders. Refused, with nothing moved, if losing the node would leave a group below\n" +
			"quorum or a group it leads has no other live replica, unless --force. --dry-run only reports;\n" +
			"--lame-duck then closes the node's NATS clients so they reconnect elsewhere: restart it next.",
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := bf.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), o.Timeout+10*time.Second)
			defer cancel()
			rep, err := c.Drain(ctx, o)
			var refused *client.DrainRefusedError
			if err != nil && !errors.As(err, &refused) {
				return apiErr(err)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				return err
			}
			switch {
			case refused != nil:
				return cli.WithHint(refused, "the report above names the groups; --force moves them anyway, at the cost of availability")
			case o.DryRun && !rep.RestartSafe:
				return cli.WithHint(errors.New("restarting this node now would leave a group below quorum"), "see at_risk above; wait until the other nodes are back and current")
			}
			ui.Printf("%s: %d leaderships moved in %d ms", rep.Node, len(rep.Moved), rep.ElapsedMS)
			return nil
		},
	}
	drain.Flags().BoolVar(&o.DryRun, "dry-run", false, "move nothing: report what would move and whether a restart would cost quorum (exit 1 if it would)")
	drain.Flags().BoolVar(&o.Force, "force", false, "move leaders even when that or the restart costs availability")
	drain.Flags().BoolVar(&o.LameDuck, "lame-duck", false, "once leaders have moved, put the node's NATS in lame duck (restart it next)")
	drain.Flags().DurationVar(&o.Timeout, "timeout", 20*time.Second, "how long the node may take to confirm the new leaders (at most 25s)")
	cmd.AddCommand(drain)
	return cmd
}
