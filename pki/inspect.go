package pki

import (
	"crypto/x509"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// CertInfo is what unibus pki inspect shows of one certificate.
type CertInfo struct {
	File      string    `json:"file"`
	Subject   string    `json:"subject"`
	DNS       []string  `json:"dns"`
	IPs       []string  `json:"ips"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	DaysLeft  int       `json:"days_left"` // negative once expired
	KeyType   string    `json:"key_type"`
	Usage     string    `json:"usage"`
	IsCA      bool      `json:"is_ca"`
	// ChainsTo is "route CA", "client CA" (signed by it), "route CA (self)"
	// or "client CA (self)" for a CA in the bundle, or "unknown".
	ChainsTo string `json:"chains_to"`
}

// Inspect describes every certificate of a PEM file. route and client are
// the trust bundles to tell which CA a certificate chains to; either may be
// nil when unknown. Chains are found by signature alone, so an expired
// certificate still shows where it belongs.
func Inspect(path string, route, client Bundle, now time.Time) ([]CertInfo, error) {
	b, err := ReadBundleFile(path)
	if err != nil {
		return nil, err
	}
	var out []CertInfo
	for _, c := range b {
		info := CertInfo{
			File:      path,
			Subject:   c.Subject.CommonName,
			DNS:       append([]string{}, c.DNSNames...),
			IPs:       []string{},
			Issuer:    c.Issuer.CommonName,
			NotBefore: c.NotBefore.UTC(),
			NotAfter:  c.NotAfter.UTC(),
			DaysLeft:  int(math.Floor(float64(c.NotAfter.Sub(now)) / float64(Day))),
			KeyType:   keyLabel(c),
			Usage:     ekuNames(c.ExtKeyUsage),
			IsCA:      c.IsCA,
			ChainsTo:  chainsTo(c, route, client),
		}
		for _, ip := range c.IPAddresses {
			info.IPs = append(info.IPs, net.IP.String(ip))
		}
		out = append(out, info)
	}
	return out, nil
}

func chainsTo(c *x509.Certificate, route, client Bundle) string {
	for _, t := range []struct {
		name  string
		trust Bundle
	}{{"route CA", route}, {"client CA", client}} {
		if slices.ContainsFunc(t.trust, c.Equal) {
			return t.name + " (self)"
		}
		if !c.IsCA && t.trust.SignerOf(c) != nil {
			return t.name
		}
	}
	return "unknown"
}

// FindDir looks for the PKI folder a file belongs to: the nearest folder,
// from the file's own upwards, that holds route-ca.crt or client-ca.crt.
func FindDir(file string) (Dir, bool) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", false
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		d := Dir(dir)
		for _, k := range []CAKind{RouteCA, ClientCA} {
			if _, err := os.Stat(d.CACert(k)); err == nil {
				return d, true
			}
		}
		if parent := filepath.Dir(dir); parent == dir {
			return "", false
		}
	}
}
