package provision

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"filippo.io/age"

	"github.com/unibus/unibus/pki"
)

// ErrNeedIdentity means render has to open something sealed to the
// operators (a CA key, the cluster password) and no identity was given.
var ErrNeedIdentity = errors.New("an operator age identity is needed")

// The cluster password lives in the state folder beside the spec:
//
//	cluster-pass.age          the password, sealed to operator_recipients
//	cluster-pass.recipients   who that copy is sealed to
//	cluster-pass.generation   names the password itself (a random id made
//	                          with it), so resealing for new operators
//	                          leaves every node's copy valid
//	sealed/<node>.age         the node's copy, sealed to its recipient
//	sealed/<node>.source      the node's recipient and the generation
//	ca-keys.recipients        who the CA keys are sealed to
//
// age output is randomized, so a node's copy is reused for as long as its
// recipient and the password are unchanged: rendering twice gives the same
// bytes, no identity is needed when nothing changed, and a change of
// operators restarts no node.

type passwordStore struct {
	dir        string
	recipients []age.Recipient
	recipStr   []string
	ids        []age.Identity

	plain []byte // nil until generated or opened
}

func newPasswordStore(c *Cluster, ids []age.Identity, _ bool) *passwordStore {
	return &passwordStore{dir: c.StateDir, recipients: c.OperatorRecipients, recipStr: c.OperatorRecipientStrings, ids: ids}
}

func (p *passwordStore) operatorFile() string { return filepath.Join(p.dir, "cluster-pass.age") }

func (p *passwordStore) recipientsFile() string {
	return filepath.Join(p.dir, "cluster-pass.recipients")
}

// generate makes a new password and seals the operators' copy.
func (p *passwordStore) generate() error {
	var err error
	if p.plain, err = newPassword(); err != nil {
		return err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	if err := p.sealOperator(); err != nil {
		return err
	}
	return p.writeGeneration("password-id " + hex.EncodeToString(id))
}

func (p *passwordStore) writeGeneration(g string) error {
	return pki.WriteFileAtomic(filepath.Join(p.dir, generationFile), []byte(g+"\n"), 0o600)
}

func (p *passwordStore) sealOperator() error {
	out, err := pki.EncryptKey(p.plain, p.recipients...)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(p.operatorFile(), out, 0o600); err != nil {
		return err
	}
	return pki.WriteFileAtomic(p.recipientsFile(), []byte(recipientSet(p.recipStr)), 0o600)
}

// open decrypts the operator copy, once.
func (p *passwordStore) open(why string) error {
	if p.plain != nil {
		return nil
	}
	sealed, err := os.ReadFile(p.operatorFile())
	if err != nil {
		return err
	}
	if len(p.ids) == 0 {
		return fmt.Errorf("%s: %w to open the cluster password (%s)", p.operatorFile(), ErrNeedIdentity, why)
	}
	plain, err := pki.DecryptKey(sealed, p.ids...)
	if err != nil {
		return fmt.Errorf("%s: %w", p.operatorFile(), err)
	}
	p.plain = plain
	return nil
}

// sealFor writes a node's copy, sealed to recipient, and its source.
func (p *passwordStore) sealFor(node, recipient, generation string) error {
	if err := p.open(fmt.Sprintf("node %s is new or its age recipient changed", node)); err != nil {
		return err
	}
	r, err := age.ParseX25519Recipient(recipient)
	if err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	sealed, err := pki.EncryptKey(p.plain, r)
	if err != nil {
		return err
	}
	sealedPath := filepath.Join(p.dir, "sealed", node+".age")
	if err := os.MkdirAll(filepath.Dir(sealedPath), 0o700); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(sealedPath, sealed, 0o600); err != nil {
		return err
	}
	return pki.WriteFileAtomic(filepath.Join(p.dir, "sealed", node+".source"), []byte(sealSource(recipient, generation)), 0o600)
}

// newPassword is 256 bits from crypto/rand, as text NATS accepts.
func newPassword() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return []byte(base64.RawURLEncoding.EncodeToString(b)), nil
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
