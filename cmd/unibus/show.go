package main

import (
	"errors"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/provision"
)

func newShowCmd(ui cli.UI) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "show [-json] PLANFILE",
		Short: "Print a plan saved with unibus plan -out",
		Long: `Show prints a saved plan as plan printed it, or as JSON with -json. It reads
the plan file only: no spec, no node.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			rest, err := parseSpecFlags(cmd, args)
			if err != nil {
				return err
			}
			if len(rest) != 1 {
				return cli.WithHint(cli.Usagef("show needs exactly one PLANFILE, got %d arguments", len(rest)), "save one with unibus plan -out FILE")
			}
			doc, err := provision.ReadPlanFile(rest[0])
			if errors.Is(err, fs.ErrNotExist) {
				return cli.WithHint(err, "save a plan with unibus plan -out %s", rest[0])
			}
			if err != nil {
				return err
			}
			return printPlan(cmd.OutOrStdout(), doc, jsonOut)
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the plan as JSON")
	return cmd
}
