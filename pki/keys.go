package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// KeyType names the key algorithms unibus issues. Only these two: both are
// fast, small, and supported by every TLS 1.3 stack unibus talks to.
type KeyType string

const (
	// P256 is ECDSA on NIST P-256, the default.
	P256 KeyType = "p256"
	// Ed25519 is EdDSA on Curve25519.
	Ed25519 KeyType = "ed25519"
)

// DefaultKeyType is used when a [Leaf] or [CASpec] leaves KeyType empty.
const DefaultKeyType = P256

// ErrUnknownKeyType is returned for a key type name or a key in a file that
// unibus does not issue or load.
var ErrUnknownKeyType = errors.New("unknown key type")

// ParseKeyType reads a key type name as given on a command line or in a spec.
// The empty string means [DefaultKeyType].
func ParseKeyType(s string) (KeyType, error) {
	switch KeyType(s) {
	case "":
		return DefaultKeyType, nil
	case P256, Ed25519:
		return KeyType(s), nil
	}
	return "", fmt.Errorf("%w %q (want p256 or ed25519)", ErrUnknownKeyType, s)
}

func (k KeyType) orDefault() KeyType {
	if k == "" {
		return DefaultKeyType
	}
	return k
}

// GenerateKey makes a fresh private key of type k.
func GenerateKey(k KeyType) (crypto.Signer, error) {
	switch k.orDefault() {
	case P256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("%w %q (want p256 or ed25519)", ErrUnknownKeyType, string(k))
}

// KeyTypeOf tells which [KeyType] a public key is, or "" when it is none of
// them (RSA, P-384, ...).
func KeyTypeOf(pub crypto.PublicKey) KeyType {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p.Curve == elliptic.P256() {
			return P256
		}
	case ed25519.PublicKey:
		return Ed25519
	}
	return ""
}

// describeKey names a public key's algorithm for error messages about keys
// unibus does not use.
func describeKey(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + p.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit", p.N.BitLen())
	}
	return fmt.Sprintf("%T", pub)
}

// MarshalKey encodes a private key as a PKCS #8 "PRIVATE KEY" PEM block, the
// one format OpenSSL, Go and nats-server all read for both key types.
func MarshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey decodes a PEM private key (PKCS #8, or SEC 1 "EC PRIVATE KEY" as
// older tools write it) and refuses types unibus does not issue, so a wrong
// key is caught when it is loaded, not at the first handshake.
func ParseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM block (corrupt or not a key)")
	}
	var key any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("corrupt private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok || KeyTypeOf(signer.Public()) == "" {
		what := fmt.Sprintf("%T", key)
		if ok {
			what = describeKey(signer.Public())
		}
		return nil, fmt.Errorf("%w %s (unibus uses p256 or ed25519)", ErrUnknownKeyType, what)
	}
	return signer, nil
}

// samePublicKey reports whether a certificate was issued for key.
func samePublicKey(cert *x509.Certificate, key crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	return ok && pub.Equal(cert.PublicKey)
}

// sameKey reports whether two certificates certify the same public key.
func sameKey(a, b *x509.Certificate) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := a.PublicKey.(equaler)
	return ok && pub.Equal(b.PublicKey)
}
