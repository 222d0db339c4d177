package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/sshnode"
)

// newSSHMuxCmd is the background process that keeps a run's SSH
// connection for the next runs (UNIBUS_SSH_PERSIST); a run starts it
// detached, with its settings on stdin. It is not for operators.
func newSSHMuxCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "ssh-mux",
		Short:              "Keep one SSH connection for the next runs (internal)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, _ []string) error {
			return sshnode.MuxMain(os.Stdin)
		},
	}
}
