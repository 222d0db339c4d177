package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
)

// Dir is a PKI folder on the operator's machine, laid out as DESIGN.md
// fixes it:
//
//	route-ca.crt  route-ca.key        route CA (trust bundle, signing key)
//	client-ca.crt client-ca.key       client CA
//	nodes/<name>/route.crt|key        node route certificate
//	nodes/<name>/client.crt|key       node client-facing server certificate
//	clients/<handle>.crt|key          client certificates
//
// A CA .crt file is a [Bundle]: during a rotation it holds the old and the
// new CA, and the key belongs to the last one.
type Dir string

// CACert is the path of a CA's trust bundle.
func (d Dir) CACert(k CAKind) string { return d.path(string(k) + "-ca.crt") }

// CAKey is the path of a CA's private key (PEM, or age-encrypted PEM).
func (d Dir) CAKey(k CAKind) string { return d.path(string(k) + "-ca.key") }

// LeafFiles are the certificate and key paths of a leaf.
func (d Dir) LeafFiles(l Leaf) (cert, key string) {
	switch l.Kind {
	case KindRoute:
		return d.path("nodes", l.Name, "route.crt"), d.path("nodes", l.Name, "route.key")
	case KindServer:
		return d.path("nodes", l.Name, "client.crt"), d.path("nodes", l.Name, "client.key")
	}
	return d.path("clients", l.Name+".crt"), d.path("clients", l.Name+".key")
}

func (d Dir) path(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

// CAs is a cluster's pair of CAs in memory.
type CAs struct{ Route, Client *CA }

// For is the CA that signs leaves of kind k.
func (c CAs) For(k Kind) *CA {
	if k.Issuer() == RouteCA {
		return c.Route
	}
	return c.Client
}

// InitOptions are the settings of [Dir.InitCAs]. Both CAs get the same
// settings but each its own key.
type InitOptions struct {
	Cluster      string
	KeyType      KeyType
	Validity     time.Duration
	PermittedDNS []string
	PermittedIPs []*net.IPNet
	// Recipients, when set, encrypt both CA keys with age; they are then
	// read back only with a matching identity.
	Recipients []age.Recipient
	// Force replaces existing CA keys, orphaning every certificate they signed.
	Force bool
	Now   time.Time
}

// InitCAs creates the route CA and the client CA of a cluster in d.
func (d Dir) InitCAs(o InitOptions) (CAs, error) {
	for _, k := range []CAKind{RouteCA, ClientCA} {
		if err := refuseExistingKey(d.CAKey(k), o.Force); err != nil {
			return CAs{}, err
		}
	}
	if err := os.MkdirAll(string(d), 0o755); err != nil {
		return CAs{}, fileErr(string(d), err)
	}
	var cas CAs
	for _, k := range []CAKind{RouteCA, ClientCA} {
		ca, err := NewCA(CASpec{Kind: k, Cluster: o.Cluster, KeyType: o.KeyType, Validity: o.Validity,
			PermittedDNS: o.PermittedDNS, PermittedIPs: o.PermittedIPs}, nowOr(o.Now))
		if err != nil {
			return CAs{}, err
		}
		if err := d.writeCA(ca, NewBundle(ca.Cert), o.Recipients); err != nil {
			return CAs{}, err
		}
		if k == RouteCA {
			cas.Route = ca
		} else {
			cas.Client = ca
		}
	}
	return cas, nil
}

// writeCA writes the key before the bundle: a crash in between leaves a key
// that does not match, which LoadCA reports, rather than a bundle whose
// active CA has no key.
func (d Dir) writeCA(ca *CA, trust Bundle, recipients []age.Recipient) error {
	keyPEM, err := MarshalKey(ca.Key)
	if err != nil {
		return err
	}
	if len(recipients) > 0 {
		if keyPEM, err = EncryptKey(keyPEM, recipients...); err != nil {
			return fileErr(d.CAKey(ca.Kind), err)
		}
	}
	if err := WriteFileAtomic(d.CAKey(ca.Kind), keyPEM, KeyMode); err != nil {
		return err
	}
	return WriteFileAtomic(d.CACert(ca.Kind), trust.PEM(), CertMode)
}

// Trust reads both trust bundles.
func (d Dir) Trust() (route, client Bundle, err error) {
	if route, err = ReadBundleFile(d.CACert(RouteCA)); err != nil {
		return nil, nil, err
	}
	if client, err = ReadBundleFile(d.CACert(ClientCA)); err != nil {
		return nil, nil, err
	}
	return route, client, nil
}

// LoadCA reads a CA's bundle and signing key; an age-encrypted key is
// decrypted in memory with ids. The key must belong to the bundle's active
// (last) CA.
func (d Dir) LoadCA(k CAKind, ids ...age.Identity) (*CA, Bundle, error) {
	trust, err := ReadBundleFile(d.CACert(k))
	if err != nil {
		return nil, nil, err
	}
	key, err := ReadKeyFile(d.CAKey(k), ids...)
	if err != nil {
		return nil, nil, err
	}
	active := trust.Active()
	if err := checkKeyPair(d.CACert(k), active, d.CAKey(k), key); err != nil {
		return nil, nil, err
	}
	if !active.IsCA {
		return nil, nil, &FileError{Path: d.CACert(k), Err: errors.New("last certificate is not a CA")}
	}
	return &CA{Kind: k, Cert: active, Key: key}, trust, nil
}

// LoadCAs reads both CAs; see [Dir.LoadCA].
func (d Dir) LoadCAs(ids ...age.Identity) (CAs, error) {
	route, _, err := d.LoadCA(RouteCA, ids...)
	if err != nil {
		return CAs{}, err
	}
	client, _, err := d.LoadCA(ClientCA, ids...)
	if err != nil {
		return CAs{}, err
	}
	if route.Cert.Equal(client.Cert) || samePublicKey(route.Cert, client.Key) {
		return CAs{}, fmt.Errorf("%s and %s share a key: the route CA and the client CA must be independent", d.CACert(RouteCA), d.CACert(ClientCA))
	}
	return CAs{Route: route, Client: client}, nil
}

// IssueOptions are the settings of writing issued leaves.
type IssueOptions struct {
	// Force replaces existing leaf keys.
	Force bool
	Now   time.Time
}

// IssueLeaves issues and writes several leaves as one step: every key file
// is checked before any is written, so a refusal leaves the folder as it
// was.
func (d Dir) IssueLeaves(cas CAs, leaves []Leaf, o IssueOptions) ([]*Issued, error) {
	for _, l := range leaves {
		if err := l.Validate(); err != nil {
			return nil, err
		}
		if cas.For(l.Kind) == nil {
			return nil, fmt.Errorf("no %s CA loaded to sign the %s certificate of %q", l.Kind.Issuer(), l.Kind, l.Name)
		}
		_, key := d.LeafFiles(l)
		if err := refuseExistingKey(key, o.Force); err != nil {
			return nil, err
		}
	}
	// Sign everything before writing anything: a leaf the CA refuses
	// (a name constraint) must not leave its sibling half-written.
	var out []*Issued
	for _, l := range leaves {
		is, err := cas.For(l.Kind).Issue(l, nowOr(o.Now))
		if err != nil {
			return nil, err
		}
		out = append(out, is)
	}
	for _, is := range out {
		if err := d.write(is); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (d Dir) write(is *Issued) error {
	certPath, keyPath := d.LeafFiles(is.Leaf)
	if err := os.MkdirAll(filepath.Dir(certPath), 0o755); err != nil {
		return fileErr(filepath.Dir(certPath), err)
	}
	keyPEM, err := is.KeyPEM()
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(keyPath, keyPEM, KeyMode); err != nil {
		return err
	}
	return WriteFileAtomic(certPath, is.CertPEM(), CertMode)
}

// Node is the desired state of a node's certificates: one route
// certificate and one client-facing server certificate, with the same names.
type Node struct {
	Name        string
	DNS         []string
	IPs         []net.IP
	KeyType     KeyType
	Validity    time.Duration
	RenewBefore time.Duration
}

// Leaves are the node's route and client-facing server certificates.
func (n Node) Leaves() []Leaf {
	l := Leaf{Name: n.Name, DNS: n.DNS, IPs: n.IPs, KeyType: n.KeyType, Validity: n.Validity, RenewBefore: n.RenewBefore}
	route, server := l, l
	route.Kind, server.Kind = KindRoute, KindServer
	return []Leaf{route, server}
}

// IssueNode writes nodes/<name>/route.crt|key and client.crt|key.
func (d Dir) IssueNode(cas CAs, n Node, o IssueOptions) ([]*Issued, error) {
	return d.IssueLeaves(cas, n.Leaves(), o)
}

// IssueClient writes clients/<handle>.crt|key, signed by the client CA.
func (d Dir) IssueClient(client *CA, l Leaf, o IssueOptions) (*Issued, error) {
	l.Kind = KindClient
	out, err := d.IssueLeaves(CAs{Client: client}, []Leaf{l}, o)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// DecideLeaf is [Decide] against the files in d: a missing or unreadable
// certificate, or a key that is missing or does not match, also means renew.
func (d Dir) DecideLeaf(want Leaf, issuer *CA, now time.Time) Decision {
	certPath, keyPath := d.LeafFiles(want)
	cert, err := ReadCertFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Decision{Renew, "missing"}
	}
	if err != nil {
		return Decision{Renew, err.Error()}
	}
	key, err := ReadKeyFile(keyPath)
	if err == nil {
		err = checkKeyPair(certPath, cert, keyPath, key)
	}
	if err != nil {
		return Decision{Renew, err.Error()}
	}
	return Decide(want, issuer.Cert, cert, now)
}

// ErrNeedRecipients is returned by [Dir.RotateCA] when the old CA key is
// age-encrypted and no recipients were given: the new key would otherwise be
// written in the clear.
var ErrNeedRecipients = errors.New("the CA key is age-encrypted; the new one needs age recipients too")

// RotateCA starts a rotation of one CA (step 1 of [Bundle]): a new CA with
// the same subject and settings is added to the bundle and becomes the
// signing CA. Existing leaves keep working until they are reissued.
func (d Dir) RotateCA(k CAKind, recipients []age.Recipient, now time.Time, ids ...age.Identity) (*CA, error) {
	old, trust, err := d.LoadCA(k, ids...)
	if err != nil {
		return nil, err
	}
	if raw, err := os.ReadFile(d.CAKey(k)); err == nil && IsAgeEncrypted(raw) && len(recipients) == 0 {
		return nil, &FileError{Path: d.CAKey(k), Err: ErrNeedRecipients}
	}
	spec := CASpec{Kind: k, Cluster: firstOr(old.Cert.Subject.OrganizationalUnit, "unibus"),
		KeyType: KeyTypeOf(old.Cert.PublicKey), Validity: old.Cert.NotAfter.Sub(old.Cert.NotBefore) - clockSkew,
		PermittedDNS: old.Cert.PermittedDNSDomains, PermittedIPs: old.Cert.PermittedIPRanges}
	ca, err := NewCA(spec, nowOr(now))
	if err != nil {
		return nil, err
	}
	return ca, d.writeCA(ca, trust.With(ca.Cert), recipients)
}

// PruneCA ends a rotation (step 3 of [Bundle]): CAs that sign no leaf in d
// leave the bundle. It returns the CAs dropped.
func (d Dir) PruneCA(k CAKind) (Bundle, error) {
	trust, err := ReadBundleFile(d.CACert(k))
	if err != nil {
		return nil, err
	}
	leaves, err := d.leafCerts(k)
	if err != nil {
		return nil, err
	}
	kept, dropped := trust.Prune(leaves)
	if len(dropped) == 0 {
		return nil, nil
	}
	return dropped, WriteFileAtomic(d.CACert(k), kept.PEM(), CertMode)
}

// leafCerts reads every leaf certificate in d that a CA of kind k signs.
// An unreadable one is an error: pruning without it could drop a CA it
// still needs.
func (d Dir) leafCerts(k CAKind) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, f := range d.leafFiles() {
		if f.leaf.Kind.Issuer() != k {
			continue
		}
		c, err := ReadCertFile(f.cert)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func nowOr(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}
