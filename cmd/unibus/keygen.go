package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/pki"
)

func newKeygenCmd(ui cli.UI) *cobra.Command {
	var handle, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen --handle NAME [-o FILE]",
		Short: "Make a member identity: a signing key (NATS nkey) and an age key",
		Long: `Make a member identity file (mode 0600): an Ed25519 signing key, which signs
control-plane requests and is the member's NATS nkey, and an age X25519 key, which
opens room keys sealed to the member. Prints the public halves, which an admin
needs to add the member, and the whole membershipd bootstrap command for a first
admin, with --vouch: the admin's own signature over its record.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if handle == "" {
				return cli.Usagef("--handle is required")
			}
			if out == "" {
				out = envOr("UNIBUS_IDENTITY", defaultIdentityPath())
			}
			if _, err := os.Stat(out); err == nil && !force {
				return cli.WithHint(fmt.Errorf("%s: %w", out, fs.ErrExist), "an identity is already there; pass --force to replace it (the old keys are lost)")
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			id, err := client.GenerateIdentity(handle)
			if err != nil {
				return cli.Usagef("--handle: %v", err)
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
				return err
			}
			if err := pki.WriteFileAtomic(out, id.Marshal(), 0o600); err != nil {
				return err
			}
			selfVouch, err := id.SelfVouch()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "handle:        %s\nsign-pub:      %s\nage-recipient: %s\n", id.Handle, id.SignPub(), id.Recipient())
			ui.Printf("wrote %s (secret: keep it 0600)", out)
			ui.Printf("first admin of a new membershipd: membershipd bootstrap --handle %s --sign-pub %s --age-recipient %s --vouch %s", id.Handle, id.SignPub(), id.Recipient(), selfVouch)
			ui.Printf("otherwise an admin adds you: unibus member add %s --sign-pub %s --age-recipient %s", id.Handle, id.SignPub(), id.Recipient())
			return nil
		},
	}
	cmd.Flags().StringVar(&handle, "handle", "", "member `name`: a-z, 0-9, _ and -, starting with a letter")
	cmd.Flags().StringVarP(&out, "output", "o", "", "identity `file` (default $UNIBUS_IDENTITY or ~/.config/unibus/identity)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing identity file")
	return cmd
}
