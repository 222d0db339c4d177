package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"github.com/unibus/unibus/internal/cli"
)

// ageKeygen is "membershipd age-keygen -o FILE" and "-y FILE", shaped as
// age-keygen's: it makes a node's own age identity on the node (unibus
// runs it over SSH where the node has no age-keygen), so the secret is
// born where it lives and never crosses the wire. -o refuses a file that
// exists (exit 5), as another apply may have made it first.
func ageKeygen(ui cli.UI, args []string, stdout io.Writer) int {
	flags := newSubcommand("age-keygen", "usage: membershipd age-keygen -o FILE | -y FILE\n\nMake a node's age identity (0600, printing its recipient), or print the recipient of one.", stdout)
	out := flags.String("o", "", "make a new identity in `FILE` (refused if it exists) and print its recipient")
	show := flags.String("y", "", "print the recipient of the identity in `FILE`")
	if code, done := parseSubcommand(ui, flags, args); done {
		return code
	}
	switch {
	case (*out == "") == (*show == ""):
		return ui.Fail(cli.Usagef("give -o FILE or -y FILE"))
	case *show != "":
		r, err := recipientOf(*show)
		if err != nil {
			return ui.Fail(err)
		}
		fmt.Fprintln(stdout, r)
		return 0
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return ui.Fail(err)
	}
	content := fmt.Sprintf("# unibus node identity: opens what is sealed to this node; never copy it off\n# public key: %s\n%s\n", id.Recipient(), id)
	if err := writeNew(*out, []byte(content)); errors.Is(err, fs.ErrExist) {
		ui.Fail(fmt.Errorf("%s exists: not replaced", *out))
		return 5
	} else if err != nil {
		return ui.Fail(err)
	}
	fmt.Fprintln(stdout, id.Recipient())
	return 0
}

// writeNew writes data to a new file p, 0600, whole or not at all: a temp
// file beside it, synced, then linked into place (link fails if p exists).
func writeNew(p string, data []byte) error {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o600); err != nil {
		return err
	}
	return os.Link(f.Name(), p)
}

func recipientOf(p string) (string, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	ids, err := age.ParseIdentities(strings.NewReader(string(data)))
	if err != nil || len(ids) != 1 {
		return "", fmt.Errorf("%s: want exactly one age identity (%v)", p, err)
	}
	x, ok := ids[0].(*age.X25519Identity)
	if !ok {
		return "", fmt.Errorf("%s: not an X25519 identity", p)
	}
	return x.Recipient().String(), nil
}
