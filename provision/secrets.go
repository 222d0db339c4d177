package provision

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
//	sealed/<node>.age         the node's copy, sealed to its age_recipient
//	sealed/<node>.source      the node's recipient and the digest of the
//	                          operator copy it was made from
//
// age output is randomized, so a node's copy is reused for as long as its
// recipient and the operator copy are unchanged: rendering twice gives the
// same bytes, and no identity is needed when nothing changed.

type passwordStore struct {
	dir        string
	recipients []age.Recipient
	recipStr   []string
	ids        []age.Identity
	rotate     bool

	plain  []byte // nil until generated or opened
	source string // digest of the operator copy
}

func newPasswordStore(c *Cluster, ids []age.Identity, rotate bool) *passwordStore {
	return &passwordStore{dir: c.StateDir, recipients: c.OperatorRecipients, recipStr: c.OperatorRecipientStrings, ids: ids, rotate: rotate}
}

func (p *passwordStore) operatorFile() string { return filepath.Join(p.dir, "cluster-pass.age") }

func (p *passwordStore) recipientsFile() string {
	return filepath.Join(p.dir, "cluster-pass.recipients")
}

// prepare makes sure the operator copy exists, is sealed to the current
// operator recipients, and knows its digest.
func (p *passwordStore) prepare() error {
	if len(p.recipients) == 0 {
		return errors.New("the cluster has no operator_recipients to keep the cluster password sealed to")
	}
	want := strings.Join(sortedCopy(p.recipStr), "\n") + "\n"
	sealed, err := os.ReadFile(p.operatorFile())
	switch {
	case errors.Is(err, fs.ErrNotExist) || p.rotate:
		if p.plain, err = newPassword(); err != nil {
			return err
		}
		if err := p.sealOperator(want); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		have, _ := os.ReadFile(p.recipientsFile())
		if string(have) != want {
			// The operators changed: reseal their copy, which also makes
			// every node copy stale (its source digest changes).
			if err := p.open(sealed, "operator_recipients changed"); err != nil {
				return err
			}
			if err := p.sealOperator(want); err != nil {
				return err
			}
		}
	}
	sealed, err = os.ReadFile(p.operatorFile())
	if err != nil {
		return err
	}
	sum := sha256.Sum256(sealed)
	p.source = hex.EncodeToString(sum[:])
	return nil
}

func (p *passwordStore) sealOperator(recipients string) error {
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
	return pki.WriteFileAtomic(p.recipientsFile(), []byte(recipients), 0o600)
}

// open decrypts the operator copy, once.
func (p *passwordStore) open(sealed []byte, why string) error {
	if p.plain != nil {
		return nil
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

// forNode returns the node's sealed copy, reusing the stored one when it
// is still current.
func (p *passwordStore) forNode(n *Node) ([]byte, error) {
	sealedPath := filepath.Join(p.dir, "sealed", n.Name+".age")
	sourcePath := filepath.Join(p.dir, "sealed", n.Name+".source")
	wantSource := fmt.Sprintf("recipient %s\noperator-copy sha256:%s\n", n.AgeRecipient, p.source)
	if have, err := os.ReadFile(sourcePath); err == nil && string(have) == wantSource {
		if sealed, err := os.ReadFile(sealedPath); err == nil {
			return sealed, nil
		}
	}
	if p.plain == nil {
		sealed, err := os.ReadFile(p.operatorFile())
		if err != nil {
			return nil, err
		}
		if err := p.open(sealed, fmt.Sprintf("node %s is new or its age_recipient changed", n.Name)); err != nil {
			return nil, err
		}
	}
	r, err := age.ParseX25519Recipient(n.AgeRecipient)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	sealed, err := pki.EncryptKey(p.plain, r)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(sealedPath), 0o700); err != nil {
		return nil, err
	}
	if err := pki.WriteFileAtomic(sealedPath, sealed, 0o600); err != nil {
		return nil, err
	}
	if err := pki.WriteFileAtomic(sourcePath, []byte(wantSource), 0o600); err != nil {
		return nil, err
	}
	return sealed, nil
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
