package pki

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Action is what should happen to a leaf certificate.
type Action string

const (
	// Keep leaves the certificate as it is.
	Keep Action = "keep"
	// Renew issues a new key and certificate.
	Renew Action = "renew"
)

// Decision is the outcome of [Decide]: the action and why, in words an
// operator reads in a plan ("expires in 12 d < renew window 30 d").
type Decision struct {
	Action Action
	Reason string
}

// Decide compares a desired leaf with the certificate that exists for it
// (nil when there is none) and the CA that should have signed it. Every
// reason to renew is listed, most fundamental first; keep says how long the
// certificate has left. It reads no files: the caller loads them, so plan can
// decide for remote nodes too.
func Decide(want Leaf, issuer, have *x509.Certificate, now time.Time) Decision {
	if have == nil {
		return Decision{Renew, "missing"}
	}
	want = want.normalized()
	var reasons []string
	if issuer != nil && have.CheckSignatureFrom(issuer) != nil {
		reasons = append(reasons, fmt.Sprintf("issuer changed (signed by %q, want %s)", have.Issuer.CommonName, caLabel(issuer)))
	}
	if got := KeyTypeOf(have.PublicKey); got != want.KeyType {
		reasons = append(reasons, fmt.Sprintf("key type changed (%s, want %s)", keyLabel(have), want.KeyType))
	}
	if !slices.Equal(have.ExtKeyUsage, want.Kind.extKeyUsage()) {
		reasons = append(reasons, fmt.Sprintf("usage changed (want a %s certificate)", want.Kind))
	}
	if have.Subject.CommonName != want.Name {
		reasons = append(reasons, fmt.Sprintf("subject changed (%q, want %q)", have.Subject.CommonName, want.Name))
	}
	if diff := sanDiff(have, want); diff != "" {
		reasons = append(reasons, "SAN list changed ("+diff+")")
	}
	left := have.NotAfter.Sub(now)
	switch {
	case left <= 0:
		reasons = append(reasons, fmt.Sprintf("expired %s ago", days(-left)))
	case left < want.RenewBefore:
		reasons = append(reasons, fmt.Sprintf("expires in %s < renew window %s", days(left), days(want.RenewBefore)))
	}
	if len(reasons) > 0 {
		return Decision{Renew, strings.Join(reasons, "; ")}
	}
	return Decision{Keep, fmt.Sprintf("valid for %s more (renew window %s)", days(left), days(want.RenewBefore))}
}

// sanDiff lists SANs to add (+) and remove (-), "" when they agree.
func sanDiff(have *x509.Certificate, want Leaf) string {
	got := Leaf{DNS: have.DNSNames, IPs: have.IPAddresses}.normalized()
	var diff []string
	for _, d := range want.DNS {
		if !slices.Contains(got.DNS, d) {
			diff = append(diff, "+dns:"+d)
		}
	}
	for _, d := range got.DNS {
		if !slices.Contains(want.DNS, d) {
			diff = append(diff, "-dns:"+d)
		}
	}
	for _, ip := range want.IPs {
		if !slices.ContainsFunc(got.IPs, ip.Equal) {
			diff = append(diff, "+ip:"+ip.String())
		}
	}
	for _, ip := range got.IPs {
		if !slices.ContainsFunc(want.IPs, ip.Equal) {
			diff = append(diff, "-ip:"+ip.String())
		}
	}
	return strings.Join(diff, ", ")
}

// days renders a duration the way operators count certificate lifetimes:
// whole days, rounded down ("12 d"), hours below one day.
func days(d time.Duration) string {
	if d < Day {
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d d", int(d/Day))
}

func keyLabel(c *x509.Certificate) string {
	if k := KeyTypeOf(c.PublicKey); k != "" {
		return string(k)
	}
	return describeKey(c.PublicKey)
}

// caLabel tells CAs with the same subject apart (before and after a
// rotation) by the start of their key identifier.
func caLabel(ca *x509.Certificate) string {
	return fmt.Sprintf("%q key %s", ca.Subject.CommonName, shortKeyID(ca))
}

func shortKeyID(c *x509.Certificate) string {
	id := c.SubjectKeyId
	if len(id) > 4 {
		id = id[:4]
	}
	return fmt.Sprintf("%x", id)
}
