package main

import (
	"context"
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/cli"
)

func newMemberCmd(ui cli.UI) *cobra.Command {
	var bf busFlags
	cmd := &cobra.Command{Use: "member", Short: "Add and show members of the control plane"}
	bf.register(cmd, false)

	var role, signPub, recipient string
	add := &cobra.Command{
		Use:   "add HANDLE --sign-pub KEY --age-recipient R [--role member|admin]",
		Short: "Add a member (admins only), vouching for it with your signing key",
		Args:  exactArgs(1, "HANDLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if signPub == "" || recipient == "" {
				return cli.WithHint(cli.Usagef("--sign-pub and --age-recipient are required"), "the new member prints both with unibus keygen")
			}
			c, err := bf.client()
			if err != nil {
				return err
			}
			m, err := c.CreateMember(context.Background(), client.Member{Handle: args[0], Role: role, SignPub: signPub, AgeRecipient: recipient})
			if err != nil {
				return apiErr(err)
			}
			ui.Printf("member %s added as %s", m.Handle, m.Role)
			me := c.Identity()
			ui.Printf("others trust the members you vouch for once they run: unibus trust add %s %s", me.Handle, me.SignPub())
			return nil
		},
	}
	add.Flags().StringVar(&role, "role", "member", "`member` or admin")
	add.Flags().StringVar(&signPub, "sign-pub", "", "the member's signing key (`U...`)")
	add.Flags().StringVar(&recipient, "age-recipient", "", "the member's age `recipient` (age1...)")

	show := &cobra.Command{
		Use:   "show HANDLE",
		Short: "Show a member's role and public keys, as JSON",
		Args:  exactArgs(1, "HANDLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := bf.client()
			if err != nil {
				return err
			}
			m, err := c.Member(context.Background(), args[0])
			if err != nil {
				return apiErr(err)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(m)
		},
	}
	cmd.AddCommand(add, show)
	return cmd
}

// exactArgs is cobra.ExactArgs with a usage error that names the arguments.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return cli.WithHint(cli.Usagef("%s takes %s (got %d arguments)", cmd.CommandPath(), names, len(args)), "run %s --help", cmd.CommandPath())
		}
		return nil
	}
}
