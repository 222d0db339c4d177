package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/pki"
)

func parseCAKind(s string) (pki.CAKind, error) {
	switch k := pki.CAKind(s); k {
	case pki.RouteCA, pki.ClientCA:
		return k, nil
	}
	return "", cli.Usagef("CA %q: want route or client", s)
}

func newPKIRotateCmd(ui cli.UI) *cobra.Command {
	var (
		dir                       string
		identities                []string
		recipients, recipientFile []string
	)
	cmd := &cobra.Command{
		Use:   "rotate --dir DIR route|client",
		Short: "Start a CA rotation: a new CA joins the trust bundle and signs from now on",
		Long: `Start a CA rotation with overlap. A new CA joins the trust bundle (route-ca.crt
or client-ca.crt) and signs new certificates; existing ones keep working.
Then: 1. roll the bundle out to every node, 2. reissue the leaves (--force) and
roll them out, 3. 'unibus pki prune' drops the old CA once no leaf needs it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return cli.Usagef("--dir is required")
			}
			k, err := parseCAKind(args[0])
			if err != nil {
				return err
			}
			ids, err := pki.ReadIdentityFiles(identities)
			if err != nil {
				return err
			}
			rs, err := pki.ParseRecipientArgs(recipients, recipientFile)
			if err != nil {
				return err
			}
			d := pki.Dir(dir)
			ca, err := d.RotateCA(k, rs, time.Time{}, ids...)
			if err != nil {
				return caLoadHint(err, dir)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (new %s CA added, key %x...)\nwrote %s\n",
				d.CACert(k), k, ca.Cert.SubjectKeyId[:4], d.CAKey(k))
			ui.Printf("next: roll %s out to every node, then reissue the %s leaves with --force", d.CACert(k), k)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "PKI folder")
	cmd.Flags().StringArrayVar(&identities, "age-identity", nil, "age identity file to open an age-encrypted CA key (repeatable)")
	cmd.Flags().StringArrayVar(&recipients, "age-recipient", nil, "encrypt the new CA key to this age recipient (repeatable)")
	cmd.Flags().StringArrayVar(&recipientFile, "age-recipients-file", nil, "encrypt the new CA key to the recipients in this file")
	return cmd
}

func newPKIPruneCmd(ui cli.UI) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "prune --dir DIR route|client",
		Short: "End a CA rotation: drop from the trust bundle every CA that no leaf in DIR needs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return cli.Usagef("--dir is required")
			}
			k, err := parseCAKind(args[0])
			if err != nil {
				return err
			}
			d := pki.Dir(dir)
			dropped, err := d.PruneCA(k)
			if err != nil {
				return err
			}
			if len(dropped) == 0 {
				ui.Printf("every CA in %s is still needed; nothing dropped", d.CACert(k))
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d old CA(s) dropped)\n", d.CACert(k), len(dropped))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "PKI folder")
	return cmd
}
