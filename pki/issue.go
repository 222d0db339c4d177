package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"
)

// CA is a certificate authority held in memory: the certificate and the
// private key that signs leaves. The key of an age-encrypted CA exists only
// here, never decrypted on disk.
type CA struct {
	Kind CAKind
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes a fresh self-signed CA with its own key.
func NewCA(spec CASpec, now time.Time) (*CA, error) {
	tmpl, err := CATemplate(spec, now)
	if err != nil {
		return nil, err
	}
	key, err := GenerateKey(spec.KeyType)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("signing %s CA: %w", spec.Kind, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Kind: spec.Kind, Cert: cert, Key: key}, nil
}

// Issued is a freshly signed leaf and its new private key.
type Issued struct {
	Leaf Leaf
	Cert *x509.Certificate
	Key  crypto.Signer
}

// CertPEM is the certificate as a PEM block.
func (i *Issued) CertPEM() []byte { return certPEM(i.Cert) }

// KeyPEM is the private key as a PKCS #8 PEM block.
func (i *Issued) KeyPEM() ([]byte, error) { return MarshalKey(i.Key) }

// Issue makes a new key for l and signs its certificate. A leaf never
// outlives its CA: NotAfter is cut to the CA's.
func (ca *CA) Issue(l Leaf, now time.Time) (*Issued, error) {
	if want := l.Kind.Issuer(); want != ca.Kind {
		return nil, fmt.Errorf("a %s certificate is signed by the %s CA, not the %s CA", l.Kind, want, ca.Kind)
	}
	tmpl, err := LeafTemplate(l, now)
	if err != nil {
		return nil, err
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	key, err := GenerateKey(l.KeyType)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("signing %s certificate for %q: %w", l.Kind, l.Name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	// Name constraints are checked by verifiers, not by CreateCertificate:
	// verify here so a leaf the CA may not vouch for is refused at issue time,
	// not discovered at the first handshake. Unconstrained CAs skip the cost.
	if hasNameConstraints(ca.Cert) {
		if err := verifyLeaf(cert, NewBundle(ca.Cert), l.Kind, now); err != nil {
			return nil, fmt.Errorf("%s certificate for %q: %w", l.Kind, l.Name, err)
		}
	}
	return &Issued{Leaf: l.normalized(), Cert: cert, Key: key}, nil
}

func hasNameConstraints(c *x509.Certificate) bool {
	return len(c.PermittedDNSDomains)+len(c.PermittedIPRanges)+
		len(c.ExcludedDNSDomains)+len(c.ExcludedIPRanges) > 0
}

// verifyLeaf checks a leaf against a trust bundle, at time now, for every
// use its kind needs. One Verify per usage: Verify accepts a chain that allows
// any one of the usages it is given, and a route certificate needs both.
func verifyLeaf(cert *x509.Certificate, trust Bundle, kind Kind, now time.Time) error {
	pool := trust.Pool()
	for _, eku := range kind.extKeyUsage() {
		_, err := cert.Verify(x509.VerifyOptions{
			Roots:       pool,
			CurrentTime: now,
			KeyUsages:   []x509.ExtKeyUsage{eku},
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
