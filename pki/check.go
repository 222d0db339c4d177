package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
)

// Problem is one thing wrong in a PKI folder, tied to the file it is about.
type Problem struct {
	File    string `json:"file"`
	Problem string `json:"problem"`
}

func (p Problem) String() string { return p.File + ": " + p.Problem }

// CheckOptions are the settings of [Dir.Check].
type CheckOptions struct {
	Now time.Time
	// RenewBefore and CARenewBefore are the windows in which a leaf or a CA
	// counts as expiring. Zero means DefaultRenewBefore and
	// DefaultCARenewBefore.
	RenewBefore   time.Duration
	CARenewBefore time.Duration
	// Identities open age-encrypted CA keys so they can be matched with their
	// certificates; without them that one check is skipped.
	Identities []age.Identity
}

// CheckReport is what [Dir.Check] found: every problem, and how much it
// looked at, so "no problem" can be told from "nothing there".
type CheckReport struct {
	Problems []Problem
	CAs      int // CA certificates in both bundles
	Leaves   int // leaf certificates
}

// leafFile is a leaf's place in a Dir.
type leafFile struct {
	leaf      Leaf
	cert, key string
}

// leafFiles lists every leaf the folder holds, whether only its certificate
// or only its key is there, so a missing half is reported, not skipped.
func (d Dir) leafFiles() []leafFile {
	var out []leafFile
	add := func(l Leaf) {
		c, k := d.LeafFiles(l)
		if exists(c) || exists(k) {
			out = append(out, leafFile{l, c, k})
		}
	}
	nodes, _ := os.ReadDir(d.path("nodes"))
	for _, n := range nodes {
		if n.IsDir() {
			add(Leaf{Kind: KindRoute, Name: n.Name()})
			add(Leaf{Kind: KindServer, Name: n.Name()})
		}
	}
	clients, _ := os.ReadDir(d.path("clients"))
	var handles []string
	for _, c := range clients {
		ext := filepath.Ext(c.Name())
		if !c.IsDir() && (ext == ".crt" || ext == ".key") {
			handles = append(handles, strings.TrimSuffix(c.Name(), ext))
		}
	}
	slices.Sort(handles)
	for _, h := range slices.Compact(handles) {
		add(Leaf{Kind: KindClient, Name: h})
	}
	return out
}

// Check looks at every file of the folder and lists what is wrong: expired
// or expiring certificates, a certificate that does not chain to the CA its
// role needs or has the wrong usage, a key that is missing, does not match
// or is readable by others.
func (d Dir) Check(o CheckOptions) CheckReport {
	now := nowOr(o.Now)
	renew, caRenew := o.RenewBefore, o.CARenewBefore
	if renew == 0 {
		renew = DefaultRenewBefore
	}
	if caRenew == 0 {
		caRenew = DefaultCARenewBefore
	}
	var r CheckReport
	report := func(file, format string, args ...any) {
		r.Problems = append(r.Problems, Problem{file, fmt.Sprintf(format, args...)})
	}
	reportErr := func(file string, err error) {
		var fe *FileError
		if errors.As(err, &fe) {
			report(fe.Path, "%v", fe.Err)
		} else {
			report(file, "%v", err)
		}
	}

	trust := map[CAKind]Bundle{}
	for _, k := range []CAKind{RouteCA, ClientCA} {
		certPath, keyPath := d.CACert(k), d.CAKey(k)
		b, err := ReadBundleFile(certPath)
		if err != nil {
			reportErr(certPath, err)
		} else {
			trust[k] = b
			for _, ca := range b {
				r.CAs++
				if !ca.IsCA {
					report(certPath, "%q is not a CA certificate", ca.Subject.CommonName)
				}
				checkValidity(report, certPath, ca, now, caRenew)
			}
		}
		if !exists(keyPath) {
			report(keyPath, "missing: the %s CA cannot sign", k)
			continue
		}
		checkKeyMode(report, keyPath)
		if b == nil {
			continue
		}
		key, err := ReadKeyFile(keyPath, o.Identities...)
		if errors.Is(err, ErrNeedIdentity) {
			continue // encrypted and nothing to open it: not a problem
		}
		if err == nil {
			err = checkKeyPair(certPath, b.Active(), keyPath, key)
		}
		if err != nil {
			reportErr(keyPath, err)
		}
	}
	if rb, cb := trust[RouteCA], trust[ClientCA]; rb != nil && cb != nil {
		for _, c := range rb {
			if slices.ContainsFunc(cb, func(o *x509.Certificate) bool { return sameKey(o, c) }) {
				report(d.CACert(ClientCA), "shares a key with %s: the two CAs must be independent", d.CACert(RouteCA))
				break
			}
		}
	}

	for _, f := range d.leafFiles() {
		if !exists(f.cert) {
			report(f.key, "key without its certificate %s", f.cert)
			continue
		}
		r.Leaves++
		cert, err := ReadCertFile(f.cert)
		if err != nil {
			reportErr(f.cert, err)
			continue
		}
		if !exists(f.key) {
			report(f.cert, "certificate without its key %s", f.key)
		} else {
			checkKeyMode(report, f.key)
			key, err := ReadKeyFile(f.key)
			if err == nil {
				err = checkKeyPair(f.cert, cert, f.key, key)
			}
			if err != nil {
				reportErr(f.key, err)
			}
		}
		want := f.leaf.Kind.Issuer()
		if b := trust[want]; b != nil && b.SignerOf(cert) == nil {
			other := ClientCA
			if want == ClientCA {
				other = RouteCA
			}
			if ob := trust[other]; ob != nil && ob.SignerOf(cert) != nil {
				report(f.cert, "wrong chain: signed by the %s CA, a %s certificate needs the %s CA", other, f.leaf.Kind, want)
			} else {
				report(f.cert, "wrong chain: issuer %q is not in %s", cert.Issuer.CommonName, d.CACert(want))
			}
		}
		if wantEKU := f.leaf.Kind.extKeyUsage(); !slices.Equal(cert.ExtKeyUsage, wantEKU) {
			report(f.cert, "usage is %s, a %s certificate needs %s", ekuNames(cert.ExtKeyUsage), f.leaf.Kind, ekuNames(wantEKU))
		}
		checkValidity(report, f.cert, cert, now, renew)
	}
	return r
}

func checkValidity(report func(string, string, ...any), file string, c *x509.Certificate, now time.Time, renew time.Duration) {
	switch left := c.NotAfter.Sub(now); {
	case now.Before(c.NotBefore):
		report(file, "not valid before %s", c.NotBefore.UTC().Format(time.RFC3339))
	case left <= 0:
		report(file, "expired %s ago (%s)", days(-left), c.NotAfter.UTC().Format(time.DateOnly))
	case left < renew:
		report(file, "expiring: expires in %s, within the renew window of %s", days(left), days(renew))
	}
}

// checkKeyMode flags a key anyone but its owner can read: on a shared
// host that is a leaked key.
func checkKeyMode(report func(string, string, ...any), path string) {
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		report(path, "key is readable by group or others (mode %04o); chmod 600 it", m)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

func ekuNames(ekus []x509.ExtKeyUsage) string {
	var names []string
	for _, e := range ekus {
		switch e {
		case x509.ExtKeyUsageServerAuth:
			names = append(names, "serverAuth")
		case x509.ExtKeyUsageClientAuth:
			names = append(names, "clientAuth")
		default:
			names = append(names, fmt.Sprintf("eku(%d)", e))
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "+")
}
