package main

import (
	"github.com/spf13/cobra"

	"github.com/unibus/unibus/units"
)

// newExecSuperviseCmd is the detached supervisor the exec service manager
// starts for each unit (units.ExecManager); it is not for operators.
func newExecSuperviseCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "exec-supervise --dir DIR",
		Short:              "Supervise one unit for the exec service manager (internal)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return units.SuperviseMain(args)
		},
	}
}
