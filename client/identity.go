package client

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"filippo.io/age"
	"github.com/nats-io/nkeys"

	"github.com/unibus/unibus/internal/ids"
	"github.com/unibus/unibus/internal/vouch"
)

// Identity is a member's private keys: the Ed25519 signing key (an nkey
// user seed, which signs control-plane requests and authenticates on NATS)
// and the age X25519 identity that opens sealed room keys. Trusted are the
// admins it pins: room keys are sealed only to members whose record one of
// them vouched for (directly or through other admins they vouched for).
type Identity struct {
	Handle  string
	Sign    nkeys.KeyPair
	Age     *age.X25519Identity
	Trusted []TrustedAdmin
}

// TrustedAdmin is a pinned admin: its handle and signing key ("U...").
type TrustedAdmin struct {
	Handle  string
	SignPub string
}

// GenerateIdentity makes fresh keys for handle.
func GenerateIdentity(handle string) (*Identity, error) {
	if err := ids.ValidHandle(handle); err != nil {
		return nil, err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	a, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	return &Identity{Handle: handle, Sign: kp, Age: a}, nil
}

// SignPub is the public signing key ("U..."), the member's NATS nkey.
func (id *Identity) SignPub() string {
	pub, _ := id.Sign.PublicKey()
	return pub
}

// Recipient is the public age recipient ("age1...") room keys are sealed to.
func (id *Identity) Recipient() string { return id.Age.Recipient().String() }

// Marshal is the identity file: comments with the public parts, then the
// secrets, one "key: value" a line.
func (id *Identity) Marshal() []byte {
	seed, _ := id.Sign.Seed()
	var b bytes.Buffer
	fmt.Fprintf(&b, "# unibus identity: secret keys, keep this file 0600\n")
	fmt.Fprintf(&b, "# sign-pub: %s\n# age-recipient: %s\n", id.SignPub(), id.Recipient())
	fmt.Fprintf(&b, "handle: %s\nnkey-seed: %s\nage-identity: %s\n", id.Handle, seed, id.Age.String())
	for _, t := range id.Trusted {
		fmt.Fprintf(&b, "trust-admin: %s %s\n", t.Handle, t.SignPub)
	}
	return b.Bytes()
}

// Trust pins an admin's signing key. Pinning a handle again with the same
// key changes nothing (added is false); with another key it is refused, as
// a changed key is what an attack looks like.
func (id *Identity) Trust(handle, signPub string) (added bool, err error) {
	if err := ids.ValidHandle(handle); err != nil {
		return false, err
	}
	if !nkeys.IsValidPublicUserKey(signPub) {
		return false, fmt.Errorf("signing key %q: not an nkey user public key (U...)", signPub)
	}
	if handle == id.Handle {
		return false, fmt.Errorf("%s is you: your own key is always trusted", handle)
	}
	if key := id.pinned(handle); key == signPub {
		return false, nil
	} else if key != "" {
		return false, fmt.Errorf("%s is already pinned with another key (%s)", handle, key)
	}
	id.Trusted = append(id.Trusted, TrustedAdmin{Handle: handle, SignPub: signPub})
	return true, nil
}

// Untrust drops handle's pin; it reports whether there was one.
func (id *Identity) Untrust(handle string) bool {
	for i, t := range id.Trusted {
		if t.Handle == handle {
			id.Trusted = append(id.Trusted[:i:i], id.Trusted[i+1:]...)
			return true
		}
	}
	return false
}

// pinned returns the signing key this identity trusts for handle: its own
// for itself, a pin for a pinned admin, "" otherwise.
func (id *Identity) pinned(handle string) string {
	if handle == id.Handle {
		return id.SignPub()
	}
	for _, t := range id.Trusted {
		if t.Handle == handle {
			return t.SignPub
		}
	}
	return ""
}

// Vouch signs m as the admin m.VouchedBy, who must be this identity; the
// server requires it on every member an admin adds.
func (id *Identity) Vouch(m Member) (string, error) {
	if m.VouchedBy != id.Handle {
		return "", fmt.Errorf("vouched_by is %q but you are %s", m.VouchedBy, id.Handle)
	}
	return vouch.Sign(id.Sign, vouchRecord(m))
}

// SelfVouch is the first admin's vouch for its own record, which membershipd
// bootstrap takes as --vouch.
func (id *Identity) SelfVouch() (string, error) {
	return id.Vouch(Member{Handle: id.Handle, Role: "admin", SignPub: id.SignPub(), AgeRecipient: id.Recipient(), VouchedBy: id.Handle})
}

func vouchRecord(m Member) vouch.Record {
	return vouch.Record{Handle: m.Handle, Role: m.Role, SignPub: m.SignPub, AgeRecipient: m.AgeRecipient, VouchedBy: m.VouchedBy}
}

// ParseIdentity reads what Marshal wrote.
func ParseIdentity(data []byte) (*Identity, error) {
	id := &Identity{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: want key: value", n)
		}
		v = strings.TrimSpace(v)
		var err error
		switch k {
		case "handle":
			id.Handle, err = v, ids.ValidHandle(v)
		case "nkey-seed":
			// Errors on secret lines never quote the value back.
			id.Sign, err = nkeys.FromSeed([]byte(v))
			if err == nil {
				if pub, _ := id.Sign.PublicKey(); !nkeys.IsValidPublicUserKey(pub) {
					err = errors.New("wrong kind")
				}
			}
			if err != nil {
				id.Sign, err = nil, errors.New("not a user nkey seed (SU...)")
			}
		case "trust-admin":
			err = id.parseTrust(v)
		case "age-identity":
			if id.Age, err = age.ParseX25519Identity(v); err != nil {
				err = errors.New("not an age X25519 identity (AGE-SECRET-KEY-1...)")
			}
		default:
			err = fmt.Errorf("unknown key %q", k)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", n, k, err)
		}
	}
	switch {
	case id.Handle == "":
		return nil, errors.New("no handle: line")
	case id.Sign == nil:
		return nil, errors.New("no nkey-seed: line")
	case id.Age == nil:
		return nil, errors.New("no age-identity: line")
	}
	return id, nil
}

// parseTrust reads a "trust-admin: HANDLE SIGNPUB" value.
func (id *Identity) parseTrust(v string) error {
	f := strings.Fields(v)
	if len(f) != 2 {
		return errors.New("want HANDLE SIGNPUB (an admin's handle and its U... key)")
	}
	if err := ids.ValidHandle(f[0]); err != nil {
		return err
	}
	if !nkeys.IsValidPublicUserKey(f[1]) {
		return errors.New("not an nkey user public key (U...)")
	}
	if id.hasPin(f[0]) {
		return fmt.Errorf("%s is pinned twice", f[0])
	}
	id.Trusted = append(id.Trusted, TrustedAdmin{Handle: f[0], SignPub: f[1]})
	return nil
}

func (id *Identity) hasPin(handle string) bool {
	for _, t := range id.Trusted {
		if t.Handle == handle {
			return true
		}
	}
	return false
}

// LoadIdentity reads an identity file, refusing one that others can read.
func LoadIdentity(path string) (*Identity, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, unwrapPath(err))
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity %s: readable by others (mode %04o); run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, unwrapPath(err))
	}
	id, err := ParseIdentity(data)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	return id, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
