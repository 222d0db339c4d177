package main

import (
	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/cli"
)

// newPKICmd is filled in by the pki work (issue 3).
func newPKICmd(ui cli.UI) *cobra.Command {
	return &cobra.Command{Use: "pki", Short: "Manage the route CA, the client CA and their certificates"}
}
