package pki

import (
	"crypto/x509"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// The policy is read straight off the templates: usages per kind, CA
// constraints, lifetimes, serial size.
func TestTemplatesPolicy(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	server, client := x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth
	for _, tc := range []struct {
		leaf Leaf
		eku  []x509.ExtKeyUsage
	}{
		{Leaf{Kind: KindRoute, Name: "n1", DNS: []string{"N1.Test."}, IPs: []net.IP{net.ParseIP("10.0.0.1")}}, []x509.ExtKeyUsage{server, client}},
		{Leaf{Kind: KindServer, Name: "n1", DNS: []string{"n1.test"}}, []x509.ExtKeyUsage{server}},
		{Leaf{Kind: KindClient, Name: "alice"}, []x509.ExtKeyUsage{client}},
	} {
		tmpl, err := LeafTemplate(tc.leaf, now)
		if err != nil {
			t.Fatalf("%s: %v", tc.leaf.Kind, err)
		}
		if !slices.Equal(tmpl.ExtKeyUsage, tc.eku) || tmpl.IsCA || tmpl.KeyUsage != x509.KeyUsageDigitalSignature {
			t.Errorf("%s: eku %v isCA %v ku %v", tc.leaf.Kind, tmpl.ExtKeyUsage, tmpl.IsCA, tmpl.KeyUsage)
		}
		if tmpl.Subject.CommonName != tc.leaf.Name || tmpl.NotAfter.Sub(now) != DefaultLeafValidity || now.Sub(tmpl.NotBefore) != clockSkew {
			t.Errorf("%s: cn %q validity %v..%v", tc.leaf.Kind, tmpl.Subject.CommonName, tmpl.NotBefore, tmpl.NotAfter)
		}
		if tmpl.SerialNumber.BitLen() > 128 || tmpl.SerialNumber.BitLen() < 64 {
			t.Errorf("%s: serial of %d bits", tc.leaf.Kind, tmpl.SerialNumber.BitLen())
		}
	}
	route, _ := LeafTemplate(Leaf{Kind: KindRoute, Name: "n1", DNS: []string{"N1.Test."}, IPs: []net.IP{net.ParseIP("10.0.0.1")}}, now)
	if !slices.Equal(route.DNSNames, []string{"n1.test"}) || len(route.IPAddresses) != 1 {
		t.Errorf("route SANs %v %v, want the DNS name normalized and the IP kept", route.DNSNames, route.IPAddresses)
	}

	for _, k := range []CAKind{RouteCA, ClientCA} {
		ca, err := CATemplate(CASpec{Kind: k, Cluster: "prod"}, now)
		if err != nil {
			t.Fatal(err)
		}
		if !ca.IsCA || ca.MaxPathLen != 0 || !ca.MaxPathLenZero || ca.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
			t.Errorf("%s CA: isCA %v maxPathLen %d/%v ku %v", k, ca.IsCA, ca.MaxPathLen, ca.MaxPathLenZero, ca.KeyUsage)
		}
		if want := "unibus " + string(k) + " CA prod"; ca.Subject.CommonName != want {
			t.Errorf("CA subject %q, want %q", ca.Subject.CommonName, want)
		}
		if !slices.Equal(ca.ExtKeyUsage, []x509.ExtKeyUsage{server, client}) {
			t.Errorf("%s CA eku %v", k, ca.ExtKeyUsage)
		}
	}
}

func TestLeafValidation(t *testing.T) {
	for _, tc := range []struct {
		leaf Leaf
		want string
	}{
		{Leaf{Kind: KindClient, Name: "../etc"}, "not allowed"},
		{Leaf{Kind: KindClient, Name: "a/b"}, "not allowed"},
		{Leaf{Kind: KindClient, Name: "a..b"}, "not allowed"},
		{Leaf{Kind: KindClient, Name: ""}, "empty"},
		{Leaf{Kind: KindClient, Name: "bob", DNS: []string{"x.test"}}, "takes no DNS"},
		{Leaf{Kind: KindRoute, Name: "n1"}, "at least one DNS name or IP"},
		{Leaf{Kind: KindRoute, Name: "n1", DNS: []string{"bad_name!"}}, "not a valid host name"},
		{Leaf{Kind: KindRoute, Name: "n1", DNS: []string{"n1"}, KeyType: "rsa"}, "unknown key type"},
		{Leaf{Kind: "peer", Name: "n1", DNS: []string{"n1"}}, "unknown certificate kind"},
	} {
		err := tc.leaf.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.leaf, err, tc.want)
		}
	}
}

// A name-constrained CA refuses at issue time a leaf it could not vouch
// for, and a CA never signs the other CA's kind of leaf.
func TestIssueRefusals(t *testing.T) {
	now := time.Now()
	_, lan, _ := net.ParseCIDR("10.0.0.0/8")
	ca, err := NewCA(CASpec{Kind: RouteCA, Cluster: "c", PermittedDNS: []string{".prod.test"}, PermittedIPs: []*net.IPNet{lan}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Issue(Leaf{Kind: KindRoute, Name: "n1", DNS: []string{"n1.prod.test"}, IPs: []net.IP{net.ParseIP("10.1.2.3")}}, now); err != nil {
		t.Errorf("leaf inside the constraints: %v", err)
	}
	if _, err := ca.Issue(Leaf{Kind: KindRoute, Name: "n1", DNS: []string{"n1.evil.test"}, IPs: []net.IP{net.ParseIP("10.1.2.3")}}, now); err == nil {
		t.Error("leaf outside the DNS constraint was issued")
	}
	if _, err := ca.Issue(Leaf{Kind: KindRoute, Name: "n1", DNS: []string{"n1.prod.test"}, IPs: []net.IP{net.ParseIP("192.168.1.1")}}, now); err == nil {
		t.Error("leaf outside the IP constraint was issued")
	}
	if _, err := ca.Issue(Leaf{Kind: KindClient, Name: "alice"}, now); err == nil || !strings.Contains(err.Error(), "client CA") {
		t.Errorf("route CA signing a client cert: %v", err)
	}
	short, err := NewCA(CASpec{Kind: ClientCA, Cluster: "c", Validity: 10 * Day}, now)
	if err != nil {
		t.Fatal(err)
	}
	is, err := short.Issue(Leaf{Kind: KindClient, Name: "alice"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !is.Cert.NotAfter.Equal(short.Cert.NotAfter) {
		t.Errorf("leaf ends %v, after its CA %v", is.Cert.NotAfter, short.Cert.NotAfter)
	}
}
