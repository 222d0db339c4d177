package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Certificate policy lives here as templates: plain *x509.Certificate values
// built apart from any key or signature, so tests (and plan output) can read
// exactly which EKUs, SANs and lifetimes unibus asks for.

// Day is 24 hours; validity windows are counted in days.
const Day = 24 * time.Hour

const (
	// DefaultCAValidity is how long a route or client CA lasts. Rotation
	// ([Dir.RotateCA]) replaces it long before.
	DefaultCAValidity = 10 * 365 * Day
	// DefaultLeafValidity is how long a node or client certificate lasts.
	DefaultLeafValidity = 365 * Day
	// DefaultRenewBefore is how early a leaf is renewed before it expires: a
	// month leaves room for a missed apply or two.
	DefaultRenewBefore = 30 * Day
	// DefaultCARenewBefore is how early unibus pki check warns about a CA.
	DefaultCARenewBefore = 365 * Day
	// clockSkew backdates NotBefore so a node whose clock is a few minutes
	// behind the operator's still accepts a certificate issued just now.
	clockSkew = 5 * time.Minute
)

// CAKind names the two trust roots of a cluster.
type CAKind string

const (
	// RouteCA authenticates nodes to each other on the route port.
	RouteCA CAKind = "route"
	// ClientCA signs the data-plane server certificates clients check, and
	// client certificates.
	ClientCA CAKind = "client"
)

// Kind names the three leaf certificates unibus issues.
type Kind string

const (
	// KindRoute is a node's route certificate: it both serves and dials on
	// the route port (serverAuth + clientAuth), signed by the route CA.
	KindRoute Kind = "route"
	// KindServer is a node's client-facing server certificate (serverAuth),
	// signed by the client CA. It lives in nodes/<name>/client.crt.
	KindServer Kind = "server"
	// KindClient is a client's certificate (clientAuth, CN = handle), signed
	// by the client CA.
	KindClient Kind = "client"
)

// Issuer is the CA that signs leaves of kind k.
func (k Kind) Issuer() CAKind {
	if k == KindRoute {
		return RouteCA
	}
	return ClientCA
}

// extKeyUsage is the whole EKU policy of unibus leaves. A leaf gets only
// what its role needs, so a client certificate cannot serve and a
// client-facing server certificate cannot log in as a client.
func (k Kind) extKeyUsage() []x509.ExtKeyUsage {
	switch k {
	case KindRoute:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	case KindServer:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case KindClient:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	return nil
}

// CASpec is the desired state of one CA.
type CASpec struct {
	Kind     CAKind
	Cluster  string  // goes into the subject: "unibus route CA <cluster>"
	KeyType  KeyType // "" means DefaultKeyType
	Validity time.Duration
	// PermittedDNS and PermittedIPs, when set, become X.509 name
	// constraints: the CA cannot vouch for a name outside them even if its
	// key leaks. Leave empty when the cluster's names are not known at init.
	PermittedDNS []string
	PermittedIPs []*net.IPNet
}

// CATemplate is the certificate of a CA as unibus wants it, unsigned.
func CATemplate(spec CASpec, now time.Time) (*x509.Certificate, error) {
	if spec.Kind != RouteCA && spec.Kind != ClientCA {
		return nil, fmt.Errorf("unknown CA kind %q (want route or client)", spec.Kind)
	}
	if err := checkName("cluster name", spec.Cluster); err != nil {
		return nil, err
	}
	validity := spec.Validity
	if validity == 0 {
		validity = DefaultCAValidity
	}
	if validity < 0 {
		return nil, fmt.Errorf("CA validity %v is negative", validity)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization:       []string{"unibus"},
			OrganizationalUnit: []string{spec.Cluster},
			CommonName:         fmt.Sprintf("unibus %s CA %s", spec.Kind, spec.Cluster),
		},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// Only leaves below a unibus CA: no intermediate can be minted with it.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		// Go and OpenSSL check that a leaf's EKUs are allowed by its CA's, so
		// a CA cannot be borrowed for code signing or e-mail.
		ExtKeyUsage:                 []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		PermittedDNSDomains:         spec.PermittedDNS,
		PermittedIPRanges:           spec.PermittedIPs,
		PermittedDNSDomainsCritical: len(spec.PermittedDNS)+len(spec.PermittedIPs) > 0,
	}, nil
}

// Leaf is the desired state of one leaf certificate: what plan compares an
// existing file with, and what issuance turns into a certificate.
type Leaf struct {
	Kind Kind
	// Name is the node name or the client handle; it is the subject CN.
	Name string
	// DNS and IPs are the subject alternative names. Route certificates need
	// both kinds: nats-server resolves a route's host name, then verifies the
	// certificate against the IP it dialled.
	DNS []string
	IPs []net.IP
	// KeyType "" means DefaultKeyType.
	KeyType KeyType
	// Validity 0 means DefaultLeafValidity; RenewBefore 0 means
	// DefaultRenewBefore.
	Validity    time.Duration
	RenewBefore time.Duration
}

// normalized returns l with defaults filled in, DNS names lower-cased, and
// SANs sorted and de-duplicated, so two Leafs that mean the same compare
// equal.
func (l Leaf) normalized() Leaf {
	l.KeyType = l.KeyType.orDefault()
	if l.Validity == 0 {
		l.Validity = DefaultLeafValidity
	}
	if l.RenewBefore == 0 {
		l.RenewBefore = DefaultRenewBefore
	}
	dns := make([]string, 0, len(l.DNS))
	for _, d := range l.DNS {
		dns = append(dns, strings.ToLower(strings.TrimSuffix(d, ".")))
	}
	slices.Sort(dns)
	l.DNS = slices.Compact(dns)
	l.IPs = sortedIPs(l.IPs)
	return l
}

// Validate says what is wrong with a desired leaf, before any key is made.
func (l Leaf) Validate() error {
	what := "node name"
	if l.Kind == KindClient {
		what = "client handle"
	}
	if err := checkName(what, l.Name); err != nil {
		return err
	}
	if _, err := ParseKeyType(string(l.KeyType)); err != nil {
		return err
	}
	if l.Validity < 0 || l.RenewBefore < 0 {
		return errors.New("validity and renew-before must not be negative")
	}
	for _, d := range l.DNS {
		if !dnsName.MatchString(strings.TrimSuffix(d, ".")) {
			return fmt.Errorf("DNS name %q is not a valid host name", d)
		}
	}
	for _, ip := range l.IPs {
		if ip == nil || (ip.To4() == nil && len(ip) != net.IPv6len) {
			return fmt.Errorf("IP address %v is not valid", ip)
		}
	}
	switch l.Kind {
	case KindRoute, KindServer:
		if len(l.DNS)+len(l.IPs) == 0 {
			return fmt.Errorf("%s certificate for %q needs at least one DNS name or IP address", l.Kind, l.Name)
		}
	case KindClient:
		if len(l.DNS)+len(l.IPs) > 0 {
			return fmt.Errorf("client certificate for %q takes no DNS names or IP addresses", l.Name)
		}
	default:
		return fmt.Errorf("unknown certificate kind %q (want route, server or client)", l.Kind)
	}
	return nil
}

// LeafTemplate is the certificate of a leaf as unibus wants it, unsigned.
// NotAfter may still be shortened at signing so it never outlives its CA.
func LeafTemplate(l Leaf, now time.Time) (*x509.Certificate, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	l = l.normalized()
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"unibus"}, CommonName: l.Name},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(l.Validity),
		BasicConstraintsValid: true,
		// DigitalSignature only: TLS 1.3 has no RSA key transport to encipher.
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: l.Kind.extKeyUsage(),
		DNSNames:    l.DNS,
		IPAddresses: l.IPs,
	}, nil
}

// newSerial draws a random 128-bit serial: unpredictable serials are what
// keeps chosen-prefix collisions off the table, and 128 bits never repeat.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

var (
	// safeName keeps node names, handles and cluster names usable as file
	// names and subject CNs: no path separators, no leading dot, no "..".
	safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	dnsName  = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
)

// checkName refuses names that could escape the PKI folder or confuse a
// subject: they end up as paths like clients/<handle>.crt.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if !safeName.MatchString(s) || strings.Contains(s, "..") {
		return fmt.Errorf("%s %q is not allowed (letters, digits, '.', '_', '-'; no '/', no '..', at most 63)", what, s)
	}
	return nil
}

func sortedIPs(ips []net.IP) []net.IP {
	out := make([]net.IP, 0, len(ips))
	for _, ip := range ips {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		out = append(out, ip)
	}
	slices.SortFunc(out, func(a, b net.IP) int { return strings.Compare(string(a), string(b)) })
	return slices.CompactFunc(out, net.IP.Equal)
}
