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
)

// Identity is a member's private keys: the Ed25519 signing key (an nkey
// user seed, which signs control-plane requests and authenticates on NATS)
// and the age X25519 identity that opens sealed room keys.
type Identity struct {
	Handle string
	Sign   nkeys.KeyPair
	Age    *age.X25519Identity
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
	return b.Bytes()
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
