package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"

	"filippo.io/age"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/pki"
	"github.com/unibus/unibus/provision"
)

// The operator is whoever runs plan and apply, known by the unibus
// identity (unibus keygen's file, $UNIBUS_IDENTITY): its age key opens the
// operator state (CA keys, the cluster password) when the spec names no
// operator_recipients, and its record is the control plane's first admin.

func operatorIdentityPath() string { return envOr("UNIBUS_IDENTITY", defaultIdentityPath()) }

// loadOperator reads the operator's identity. With create, a missing one
// is made in memory and fresh is true: apply writes it with saveOperator
// only once the operator said yes, so a refused apply leaves nothing. It
// returns nil when there is none and create is false.
func loadOperator(ui cli.UI, create bool) (id *client.Identity, fresh bool, err error) {
	id, err = client.LoadIdentity(operatorIdentityPath())
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if !create {
		return nil, false, nil
	}
	id, err = client.GenerateIdentity(operatorHandle())
	return id, true, err
}

// saveOperator writes a fresh operator identity, refusing to replace one
// that appeared meanwhile.
func saveOperator(ui cli.UI, id *client.Identity) error {
	path := operatorIdentityPath()
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s appeared while apply ran; run apply again to use it", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(path, id.Marshal(), 0o600); err != nil {
		return err
	}
	ui.Printf("made your operator identity %s (handle %s; keep it 0600, it opens the cluster's CA keys and password)", path, id.Handle)
	return nil
}

var handleChars = regexp.MustCompile(`[^a-z0-9_-]+`)

// operatorHandle is the login name as a handle, or "operator".
func operatorHandle() string {
	if u, err := user.Current(); err == nil {
		h := strings.Trim(handleChars.ReplaceAllString(strings.ToLower(u.Username), "-"), "-_")
		if h != "" && h[0] >= 'a' && h[0] <= 'z' && len(h) <= 32 {
			return h
		}
	}
	return "operator"
}

// withOperator completes a spec with the operator: its recipient when the
// spec names no operator_recipients, and its record as the first admin.
// It returns the age identities that open the operator state.
func withOperator(spec *provision.Spec, id *client.Identity) ([]age.Identity, error) {
	if id == nil {
		if spec.IsCluster() && len(spec.Cluster.OperatorRecipients) == 0 {
			return nil, cli.WithHint(fmt.Errorf("the spec names no operator_recipients and there is no operator identity at %s", operatorIdentityPath()),
				"unibus apply makes one (or run unibus keygen), or add operator_recipients to the cluster block")
		}
		return nil, nil
	}
	if len(spec.Cluster.OperatorRecipients) == 0 {
		spec.Cluster.OperatorRecipients = []age.Recipient{id.Age.Recipient()}
		spec.Cluster.OperatorRecipientStrings = []string{id.Recipient()}
	}
	rec, err := id.FirstAdminRecord()
	if err != nil {
		return nil, err
	}
	spec.FirstAdmin = rec
	return []age.Identity{id.Age}, nil
}
