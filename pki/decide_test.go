package pki

import (
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	now := time.Now()
	ca, err := NewCA(CASpec{Kind: RouteCA, Cluster: "c"}, now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA(CASpec{Kind: RouteCA, Cluster: "c"}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := Leaf{Kind: KindRoute, Name: "n1", DNS: []string{"n1.test"}, IPs: []net.IP{net.ParseIP("10.0.0.1")}}
	issue := func(ca *CA, l Leaf, at time.Time) *Issued {
		t.Helper()
		is, err := ca.Issue(l, at)
		if err != nil {
			t.Fatal(err)
		}
		return is
	}
	current := issue(ca, want, now)
	moreSANs := want
	moreSANs.DNS = []string{"n1.test", "n1.alt.test"}
	ed := want
	ed.KeyType = Ed25519
	for _, tc := range []struct {
		name   string
		issuer *CA
		have   *Issued
		want   Leaf
		action Action
		reason string
	}{
		{"missing", ca, nil, want, Renew, "missing"},
		{"current", ca, current, want, Keep, "valid for 364 d more (renew window 30 d)"},
		{"same SANs in another order and case", ca, current, Leaf{Kind: KindRoute, Name: "n1", DNS: []string{"N1.test"}, IPs: want.IPs}, Keep, "valid for"},
		{"expiring", ca, issue(ca, want, now.Add(-353*Day+time.Hour)), want, Renew, "expires in 12 d < renew window 30 d"},
		{"expired", ca, issue(ca, want, now.Add(-400*Day)), want, Renew, "expired 35 d ago"},
		{"SAN added", ca, current, moreSANs, Renew, "SAN list changed (+dns:n1.alt.test)"},
		{"IP removed", ca, current, Leaf{Kind: KindRoute, Name: "n1", DNS: want.DNS}, Renew, "SAN list changed (-ip:10.0.0.1)"},
		{"issuer changed", other, current, want, Renew, "issuer changed"},
		{"key type changed", ca, current, ed, Renew, "key type changed (p256, want ed25519)"},
		{"usage changed", ca, current, Leaf{Kind: KindServer, Name: "n1", DNS: want.DNS, IPs: want.IPs}, Renew, "usage changed"},
	} {
		var have *x509.Certificate
		if tc.have != nil {
			have = tc.have.Cert
		}
		d := Decide(tc.want, tc.issuer.Cert, have, now)
		if d.Action != tc.action || !strings.Contains(d.Reason, tc.reason) {
			t.Errorf("%s: %s (%s), want %s (%s)", tc.name, d.Action, d.Reason, tc.action, tc.reason)
		}
	}
}
