// Package vouch is the admin's signature over a member record, shared by
// membershipd (which requires one on every new member) and the client
// package (which seals room keys only to records it can verify).
//
// An admin who adds a member signs [Canonical] of the record with its
// Ed25519 signing key (its nkey). A client that trusts that admin, by a pin
// or through a chain of admins it trusts, then knows the record's age
// recipient is the one the admin vouched for, whatever the server says.
package vouch

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nkeys"
)

// Record is what a vouch covers: the member's handle, role and both public
// keys, and the handle of the admin who vouches.
type Record struct {
	Handle       string
	Role         string
	SignPub      string
	AgeRecipient string
	VouchedBy    string
}

// Errors of Verify.
var (
	ErrMissing      = errors.New("no vouch")
	ErrBadSignature = errors.New("vouch signature does not verify")
)

var b64 = base64.RawURLEncoding

// Canonical is the signed byte string: a domain line (so a vouch can never
// pass as a request signature or anything else the key signs), then one
// field a line. Fields with a newline are refused, so two records never
// share a canonical form.
func Canonical(r Record) ([]byte, error) {
	fields := []string{r.VouchedBy, r.Handle, r.Role, r.SignPub, r.AgeRecipient}
	for _, f := range fields {
		if f == "" || strings.ContainsAny(f, "\r\n") {
			return nil, errors.New("vouch: every field must be set and on one line")
		}
	}
	return fmt.Appendf(nil, "unibus-vouch-v1\nvouched-by %s\nhandle %s\nrole %s\nsign-pub %s\nage-recipient %s\n",
		r.VouchedBy, r.Handle, r.Role, r.SignPub, r.AgeRecipient), nil
}

// Sign returns the vouch of kp (the admin's key) for r, base64url.
func Sign(kp nkeys.KeyPair, r Record) (string, error) {
	msg, err := Canonical(r)
	if err != nil {
		return "", err
	}
	sig, err := kp.Sign(msg)
	if err != nil {
		return "", err
	}
	return b64.EncodeToString(sig), nil
}

// Verify checks sig, a vouch for r, against voucherSignPub ("U..."), the
// signing key of the admin named in r.VouchedBy.
func Verify(voucherSignPub string, r Record, sig string) error {
	if sig == "" || r.VouchedBy == "" {
		return ErrMissing
	}
	raw, err := nkeys.Decode(nkeys.PrefixByteUser, []byte(voucherSignPub))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return fmt.Errorf("vouch: voucher key is not an nkey user public key")
	}
	s, err := b64.DecodeString(sig)
	if err != nil || len(s) != ed25519.SignatureSize {
		return ErrBadSignature
	}
	msg, err := Canonical(r)
	if err != nil {
		return err
	}
	if !ed25519.Verify(ed25519.PublicKey(raw), msg, s) {
		return ErrBadSignature
	}
	return nil
}

// WellFormed reports whether sig could be a vouch at all (64 bytes,
// base64url), for cheap input checks before any key is looked up.
func WellFormed(sig string) bool {
	s, err := b64.DecodeString(sig)
	return err == nil && len(s) == ed25519.SignatureSize
}
