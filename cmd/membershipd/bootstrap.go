package main

import (
	"context"
	"io"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/membershipd"
)

// bootstrap makes the first admin in the state dir. It works whether or not
// the daemon is running: SQLite serializes the two.
func bootstrap(ui cli.UI, args []string, stdout io.Writer) int {
	fs := newSubcommand("bootstrap", "usage: membershipd bootstrap --handle H --sign-pub KEY --age-recipient R --vouch SIG [--state-dir DIR]\n\n"+
		"Makes the first admin; refused once an admin exists. unibus keygen prints this command filled in.", stdout)
	handle := fs.String("handle", "", "the admin's `handle`")
	signPub := fs.String("sign-pub", "", "the admin's Ed25519 signing key as an nkey (`U...`, from unibus keygen)")
	recipient := fs.String("age-recipient", "", "the admin's age `recipient` (age1..., from unibus keygen)")
	selfVouch := fs.String("vouch", "", "the admin's own `signature` over its record (from unibus keygen)")
	stateDir := fs.String("state-dir", membershipd.DefaultConfig().StateDir, "the daemon's state `dir`")
	if code, done := parseSubcommand(ui, fs, args); done {
		return code
	}
	if *handle == "" || *signPub == "" || *recipient == "" || *selfVouch == "" || fs.NArg() > 0 {
		return ui.Fail(cli.WithHint(cli.Usagef("bootstrap needs --handle, --sign-pub, --age-recipient and --vouch"),
			"unibus keygen --handle H prints the whole command to run"))
	}
	m, err := membershipd.Bootstrap(context.Background(), *stateDir, *handle, *signPub, *recipient, *selfVouch)
	if err != nil {
		return ui.Fail(err)
	}
	ui.Printf("admin %s created in %s", m.Handle, *stateDir)
	return 0
}
