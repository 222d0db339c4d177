package provision

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"filippo.io/age"
)

// NodeIdentityFile is where a node keeps its own age identity, relative to
// its config dir: it opens the cluster password sealed to the node, and it
// never leaves the node (systemd hands it to membershipd as a credential).
const NodeIdentityFile = "age-identity"

// EnsureNodeIdentity makes the node's age identity at path (on the node)
// if there is none, 0600 in a 0700 folder, and returns its recipient; the
// private key is read only to derive the recipient and goes nowhere.
func EnsureNodeIdentity(path string) (recipient string, created bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		id, gerr := age.GenerateX25519Identity()
		if gerr != nil {
			return "", false, gerr
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", false, err
		}
		content := fmt.Sprintf("# unibus node identity: opens the secrets sealed to this node; never copy it off\n# public key: %s\n%s\n", id.Recipient(), id)
		// O_EXCL: two applies racing on one node keep one identity.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, err = f.WriteString(content)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				return id.Recipient().String(), true, nil
			}
			os.Remove(path)
			return "", false, err
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", false, err
		}
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return "", false, err
	}
	r, err := nodeRecipient(data)
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", path, err)
	}
	return r, false, nil
}

// nodeRecipient derives the recipient of an age identity file's content.
func nodeRecipient(data []byte) (string, error) {
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		return "", errors.New("not an age identity file (age-keygen's format)")
	}
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			return x.Recipient().String(), nil
		}
	}
	return "", errors.New("holds no X25519 identity")
}
