package main

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/unibus/unibus/internal/converge"
	"github.com/unibus/unibus/rollout"
	"github.com/unibus/unibus/units"
)

// level is a Nagios check result; it is also unibus status's exit code.
type level int

const (
	levelOK level = iota
	levelWarning
	levelCritical
	levelUnknown
)

func (l level) String() string {
	return [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}[l]
}

func (l level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// worse orders levels as a monitoring check sums them: a critical node
// outweighs one that could not be judged, which outweighs a warning.
func worse(a, b level) level {
	if severity[b] > severity[a] {
		return b
	}
	return a
}

var severity = map[level]int{levelOK: 0, levelWarning: 1, levelUnknown: 2, levelCritical: 3}

// nodeObs is everything unibus status saw of one node: the raw material
// [classify] judges.
type nodeObs struct {
	Name string
	// ProbeErr is why the control plane did not answer; "" when it did.
	ProbeErr string
	Sample   rollout.Sample
	Health   *rollout.Health // nil when unreachable or not membershipd's
	// Service is nil when the manager did not answer (ServiceErr says why).
	Service        *units.UnitStatus
	ServiceErr     string
	Manager        string
	ManagerVersion string
	Certs          []certObs
	CertErr        string
}

// certObs is one certificate a node holds.
type certObs struct {
	Path     string
	Subject  string
	NotAfter time.Time
}

// expect is what a node of this spec must be.
type expect struct {
	Cluster     bool          // route TLS and a cluster block are required
	RenewBefore time.Duration // the spec's pki renew window
	Now         time.Time
}

// finding is one thing wrong with a node.
type finding struct {
	Level level  `json:"level"`
	Text  string `json:"text"`
}

// classify judges one node: its worst level and every finding, worst
// first. Unreachable, not ready or not converged, a posture short of
// enforce+acl+tls, a service not active and an expired certificate are
// critical; a certificate inside its renew window and an open monitor are
// warnings; what could not be read is unknown.
func classify(o nodeObs, e expect) (level, []finding) {
	var fs []finding
	add := func(l level, format string, args ...any) {
		fs = append(fs, finding{l, fmt.Sprintf(format, args...)})
	}
	switch {
	case o.ProbeErr != "":
		add(levelCritical, "unreachable: %s", o.ProbeErr)
	case o.Health == nil:
		add(levelCritical, "the control plane's /healthz is not membershipd's health document")
	default:
		if p := problemOf(o.Sample, e); p != "" {
			add(levelCritical, "%s", p)
		}
		for _, miss := range postureGaps(o.Health.Posture, e) {
			add(levelCritical, "posture: %s", miss)
		}
		if m := o.Health.Posture.Monitor; m != "" && m != "off" {
			add(levelWarning, "nats-server monitor open (%s)", m)
		}
	}
	switch {
	case o.Service == nil && o.ServiceErr != "":
		add(levelUnknown, "service manager: %s", o.ServiceErr)
	case o.Service != nil && o.Service.ActiveState != units.StateActive:
		add(levelCritical, "service %s (%s)", o.Service.ActiveState, serviceDetail(*o.Service))
	}
	if o.CertErr != "" {
		add(levelUnknown, "certificates not read: %s", o.CertErr)
	}
	for _, c := range o.Certs {
		left := c.NotAfter.Sub(e.Now)
		switch {
		case left <= 0:
			add(levelCritical, "certificate %s expired %s ago", certName(c.Path), daysText(-left))
		case left < e.RenewBefore:
			add(levelWarning, "certificate %s expires in %s, inside the renew window of %s: run unibus apply", certName(c.Path), daysText(left), daysText(e.RenewBefore))
		}
	}
	worst := levelOK
	for _, f := range fs {
		worst = worse(worst, f.Level)
	}
	slices.SortStableFunc(fs, func(a, b finding) int {
		return severity[b.Level] - severity[a.Level]
	})
	return worst, fs
}

// problemOf is the gate's judgement of the sample, minus what a single
// node (no cluster block) cannot have.
func problemOf(s rollout.Sample, e expect) string {
	if e.Cluster {
		return s.Problem
	}
	if !s.Ready {
		return "not ready"
	}
	return ""
}

// postureGaps lists how p falls short of enforce+acl+tls.
func postureGaps(p rollout.Posture, e expect) []string {
	var out []string
	if p.BusAuth != "enforce" {
		out = append(out, fmt.Sprintf("bus_auth %s, want enforce", orNone(p.BusAuth)))
	}
	if !p.ACL {
		out = append(out, "subject ACLs not in force")
	}
	if !p.ClientTLS {
		out = append(out, "client TLS off")
	}
	if !p.HTTPTLS {
		out = append(out, "control plane not HTTPS")
	}
	if e.Cluster && !p.RouteTLS {
		out = append(out, "route TLS off")
	}
	return out
}

// postureText is the posture column: "enforce+acl+tls" when all is as it
// should be, otherwise what is there.
func postureText(p rollout.Posture, e expect) string {
	parts := []string{orNone(p.BusAuth)}
	if p.ACL {
		parts = append(parts, "acl")
	} else {
		parts = append(parts, "no-acl")
	}
	tlsOK := p.ClientTLS && p.HTTPTLS && (p.RouteTLS || !e.Cluster)
	switch {
	case tlsOK:
		parts = append(parts, "tls")
	default:
		for _, t := range []struct {
			on   bool
			name string
		}{{p.ClientTLS, "client-tls"}, {p.HTTPTLS, "http-tls"}, {p.RouteTLS || !e.Cluster, "route-tls"}} {
			if !t.on {
				parts = append(parts, "no-"+t.name)
			}
		}
	}
	if p.Monitor != "" && p.Monitor != "off" {
		parts = append(parts, "monitor")
	}
	return strings.Join(parts, "+")
}

func serviceDetail(s units.UnitStatus) string {
	d := s.SubState
	if s.Result != "" && s.Result != "success" {
		d += ", " + s.Result
	}
	return d
}

// jetStreamText is the JetStream column, from the node's own view.
func jetStreamText(c *converge.Facts) string {
	if c == nil {
		return "-"
	}
	state := "converged"
	if !c.Converged {
		state = "NOT converged"
	}
	return fmt.Sprintf("%s, streams %d/%d, followers %d/%d, meta %d/%d", state,
		c.StreamsConverged, c.Streams, c.FollowersCurrent, c.FollowersExpected, c.MetaServersCurrent, c.MetaServersExpected)
}

// certName is a certificate's short name: route for route.crt.
func certName(p string) string { return strings.TrimSuffix(path.Base(p), ".crt") }

func daysLeft(notAfter, now time.Time) int {
	return int(notAfter.Sub(now).Hours() / 24)
}

func daysText(d time.Duration) string { return fmt.Sprintf("%d d", int(d.Hours()/24)) }

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
