package main

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/pki"
)

func newTrustCmd(ui cli.UI) *cobra.Command {
	var identity string
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Pin the admins whose vouches you trust",
		Long: `Room keys are sealed only to members whose record an admin you trust vouched for
(signed), directly or through other admins that admin vouched for; your own key is
always trusted. Pins live in your identity file. Get an admin's signing key from the
admin, not from the server: a pin taken from a lying server protects nothing.`,
	}
	cmd.PersistentFlags().StringVar(&identity, "identity", envOr("UNIBUS_IDENTITY", defaultIdentityPath()), "identity `file` from unibus keygen ($UNIBUS_IDENTITY)")

	add := &cobra.Command{
		Use:   "add HANDLE SIGNPUB",
		Short: "Trust the admin HANDLE with signing key SIGNPUB (U...)",
		Args:  exactArgs(2, "HANDLE and SIGNPUB"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := loadIdentity(identity)
			if err != nil {
				return err
			}
			added, err := id.Trust(args[0], args[1])
			if err != nil {
				return cli.WithHint(fmt.Errorf("trust %s: %w", args[0], err), "unibus trust list shows your pins; unibus trust remove HANDLE drops one")
			}
			if !added {
				ui.Printf("%s is already trusted with this key", args[0])
				return nil
			}
			if err := pki.WriteFileAtomic(identity, id.Marshal(), 0o600); err != nil {
				return err
			}
			ui.Printf("trusting admin %s: room keys may be sealed to the members it vouches for (pin written to %s)", args[0], identity)
			return nil
		},
	}

	remove := &cobra.Command{
		Use:   "remove HANDLE",
		Short: "Stop trusting the admin HANDLE",
		Args:  exactArgs(1, "HANDLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := loadIdentity(identity)
			if err != nil {
				return err
			}
			if !id.Untrust(args[0]) {
				return cli.WithHint(fmt.Errorf("%s is not pinned", args[0]), "unibus trust list shows your pins")
			}
			if err := pki.WriteFileAtomic(identity, id.Marshal(), 0o600); err != nil {
				return err
			}
			ui.Printf("no longer trusting admin %s", args[0])
			return nil
		},
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the admins you trust, and yourself",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := loadIdentity(identity)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HANDLE\tSIGN-PUB\tTRUST")
			fmt.Fprintf(tw, "%s\t%s\tyou\n", id.Handle, id.SignPub())
			for _, t := range id.Trusted {
				fmt.Fprintf(tw, "%s\t%s\tpinned\n", t.Handle, t.SignPub)
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(add, remove, list)
	return cmd
}

// loadIdentity is client.LoadIdentity with the hint for a missing file.
func loadIdentity(path string) (*client.Identity, error) {
	id, err := client.LoadIdentity(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, cli.WithHint(err, "make one with: unibus keygen --handle YOURNAME (or pass --identity)")
	}
	return id, err
}
