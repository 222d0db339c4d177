package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
)

// Bundle is a trust bundle: the CA certificates a listener accepts for one
// role (route or client). It is what route-ca.crt and client-ca.crt hold.
//
// # Rotation with overlap
//
// A CA is replaced in three steps, each safe to roll out on its own:
//
//  1. [Bundle.With] the new CA: every node learns to trust it while all
//     leaves still chain to the old one. The new CA becomes the active one
//     (the last in the bundle) and signs from now on.
//  2. Leaves are reissued by the new CA one by one; peers accept both.
//  3. [Bundle.Prune] drops every CA that no leaf needs any more.
//
// Reissuing a leaf before every peer trusts the new CA, or dropping the old
// CA while a leaf still chains to it, breaks handshakes; the rotation test
// shows both.
type Bundle []*x509.Certificate

// NewBundle is a bundle of the given CA certificates, oldest first.
func NewBundle(cas ...*x509.Certificate) Bundle { return Bundle(cas) }

// ParseBundle reads PEM CA certificates. An empty bundle is an error: it
// would trust nothing, silently.
func ParseBundle(data []byte) (Bundle, error) {
	var b Bundle
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(bytes.TrimSpace(rest)) > 0 && len(b) == 0 {
				return nil, errors.New("no PEM CERTIFICATE block (corrupt or not a certificate)")
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q where a CERTIFICATE was expected", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("corrupt certificate: %w", err)
		}
		b = append(b, c)
	}
	if len(b) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block (corrupt or not a certificate)")
	}
	return b, nil
}

// PEM encodes the bundle, oldest first.
func (b Bundle) PEM() []byte {
	var out []byte
	for _, c := range b {
		out = append(out, certPEM(c)...)
	}
	return out
}

// Pool is the bundle as an x509.CertPool for tls.Config.
func (b Bundle) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range b {
		p.AddCert(c)
	}
	return p
}

// Active is the CA that signs new leaves: the newest, last in the bundle.
func (b Bundle) Active() *x509.Certificate {
	if len(b) == 0 {
		return nil
	}
	return b[len(b)-1]
}

// With returns the bundle with ca added last (it becomes [Bundle.Active]);
// a CA already present moves to the end.
func (b Bundle) With(ca *x509.Certificate) Bundle {
	return append(b.Without(ca), ca)
}

// Without returns the bundle minus ca.
func (b Bundle) Without(ca *x509.Certificate) Bundle {
	return slices.DeleteFunc(slices.Clone(b), func(c *x509.Certificate) bool { return c.Equal(ca) })
}

// SignerOf returns the CA of the bundle that signed leaf, or nil.
func (b Bundle) SignerOf(leaf *x509.Certificate) *x509.Certificate {
	for i := len(b) - 1; i >= 0; i-- {
		if leaf.CheckSignatureFrom(b[i]) == nil {
			return b[i]
		}
	}
	return nil
}

// Prune splits the bundle into the CAs still needed — the active one and
// every one that signed a leaf in leaves — and those no leaf needs any more.
// Pass every leaf that chains to this bundle, or a CA still in use is
// dropped.
func (b Bundle) Prune(leaves []*x509.Certificate) (kept, dropped Bundle) {
	for _, ca := range b {
		needed := ca == b.Active() || slices.ContainsFunc(leaves, func(l *x509.Certificate) bool {
			return l.CheckSignatureFrom(ca) == nil
		})
		if needed {
			kept = append(kept, ca)
		} else {
			dropped = append(dropped, ca)
		}
	}
	return kept, dropped
}
