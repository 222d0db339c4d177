package main

import (
	"strings"
	"testing"
	"time"

	"github.com/unibus/unibus/internal/converge"
	"github.com/unibus/unibus/rollout"
	"github.com/unibus/unibus/units"
)

var checkNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// healthyObs is a cluster node as unibus status sees it when all is well;
// each case below changes one thing.
func healthyObs() nodeObs {
	return nodeObs{
		Name:   "n1",
		Sample: rollout.Sample{Node: "n1", Ready: true, Cluster: &converge.Facts{Converged: true, Streams: 7, StreamsConverged: 7, FollowersCurrent: 14, FollowersExpected: 14}},
		Health: &rollout.Health{Status: "ok", Version: "dev", Posture: rollout.Posture{
			BusAuth: "enforce", ACL: true, ClientTLS: true, HTTPTLS: true, ClientCert: true, RouteTLS: true, Monitor: "off"}},
		Service:        &units.UnitStatus{ActiveState: units.StateActive, SubState: "running"},
		Manager:        "exec",
		ManagerVersion: "unibus-exec 1",
		Certs: []certObs{
			{Path: ".config/unibus/tls/route.crt", NotAfter: checkNow.Add(300 * 24 * time.Hour)},
			{Path: ".config/unibus/tls/client-ca.crt", NotAfter: checkNow.Add(3000 * 24 * time.Hour)},
		},
	}
}

var clusterExpect = expect{Cluster: true, RenewBefore: 30 * 24 * time.Hour, Now: checkNow}

func TestClassify(t *testing.T) {
	cases := []struct {
		name   string
		change func(o *nodeObs, e *expect)
		want   level
		finds  []string // each a substring of one finding, worst first
	}{
		{"healthy", func(*nodeObs, *expect) {}, levelOK, nil},
		{"unreachable", func(o *nodeObs, _ *expect) {
			o.ProbeErr, o.Health, o.Sample = "dial tcp 127.0.0.1:1: connection refused", nil, rollout.Sample{}
		}, levelCritical, []string{"unreachable: dial tcp"}},
		{"not converged", func(o *nodeObs, _ *expect) {
			o.Sample.Ready, o.Sample.Problem = false, "7 streams with 1/2 followers current"
			o.Sample.Cluster.Converged = false
		}, levelCritical, []string{"7 streams with 1/2 followers current"}},
		{"bus auth warn", func(o *nodeObs, _ *expect) {
			o.Health.Posture.BusAuth, o.Health.Posture.ACL = "warn", false
		}, levelCritical, []string{"bus_auth warn, want enforce", "subject ACLs not in force"}},
		{"client TLS off", func(o *nodeObs, _ *expect) { o.Health.Posture.ClientTLS = false }, levelCritical, []string{"client TLS off"}},
		{"plain HTTP", func(o *nodeObs, _ *expect) { o.Health.Posture.HTTPTLS = false }, levelCritical, []string{"control plane not HTTPS"}},
		{"route TLS off in a cluster", func(o *nodeObs, _ *expect) { o.Health.Posture.RouteTLS = false }, levelCritical, []string{"route TLS off"}},
		{"a single node has no routes", func(o *nodeObs, e *expect) {
			e.Cluster = false
			o.Health.Posture.RouteTLS = false
			o.Sample.Cluster, o.Sample.Problem = nil, "no cluster block in /healthz (not a cluster node?)"
		}, levelOK, nil},
		{"a single node not ready", func(o *nodeObs, e *expect) {
			e.Cluster = false
			o.Sample.Cluster, o.Sample.Ready, o.Sample.Problem = nil, false, "not ready: data_plane_down: ..."
		}, levelCritical, []string{"not ready"}},
		{"monitor open", func(o *nodeObs, _ *expect) { o.Health.Posture.Monitor = "loopback" }, levelWarning, []string{"monitor open (loopback)"}},
		{"service inactive but answering", func(o *nodeObs, _ *expect) {
			o.Service.ActiveState, o.Service.SubState, o.Service.Result = units.StateFailed, "failed", "supervisor-gone"
		}, levelCritical, []string{"service failed (failed, supervisor-gone)"}},
		{"certificate in the renew window", func(o *nodeObs, _ *expect) {
			o.Certs[0].NotAfter = checkNow.Add(12 * 24 * time.Hour)
		}, levelWarning, []string{"certificate route expires in 12 d, inside the renew window of 30 d"}},
		{"certificate expired", func(o *nodeObs, _ *expect) {
			o.Certs[0].NotAfter = checkNow.Add(-2 * 24 * time.Hour)
		}, levelCritical, []string{"certificate route expired 2 d ago"}},
		{"service manager silent", func(o *nodeObs, _ *expect) {
			o.Service, o.ServiceErr = nil, "no systemd user manager answers"
		}, levelUnknown, []string{"service manager: no systemd user manager answers"}},
		{"unknown outweighs a warning", func(o *nodeObs, _ *expect) {
			o.Health.Posture.Monitor = "loopback"
			o.CertErr = "permission denied"
		}, levelUnknown, []string{"certificates not read: permission denied", "monitor open"}},
		{"critical outweighs unknown and warning, listed first", func(o *nodeObs, _ *expect) {
			o.Health.Posture.Monitor = "loopback"
			o.CertErr = "permission denied"
			o.Service.ActiveState, o.Service.SubState = units.StateInactive, "dead"
		}, levelCritical, []string{"service inactive (dead)", "certificates not read", "monitor open"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, e := healthyObs(), clusterExpect
			c.change(&o, &e)
			got, fs := classify(o, e)
			if got != c.want {
				t.Errorf("level %s, want %s (findings %v)", got, c.want, fs)
			}
			if len(fs) != len(c.finds) {
				t.Fatalf("findings %v, want %d like %q", fs, len(c.finds), c.finds)
			}
			for i, want := range c.finds {
				if !strings.Contains(fs[i].Text, want) {
					t.Errorf("finding %d is %q, want one with %q", i, fs[i].Text, want)
				}
			}
		})
	}
}

// The cluster's status is its worst node's, and it is the exit code.
func TestStatusDocWorstNode(t *testing.T) {
	warn, crit := healthyObs(), healthyObs()
	warn.Name, crit.Name = "n2", "n3"
	warn.Health.Posture.Monitor = "loopback"
	crit.ProbeErr, crit.Health = "connection refused", nil
	for _, c := range []struct {
		obs  []nodeObs
		want level
	}{
		{[]nodeObs{healthyObs()}, levelOK},
		{[]nodeObs{healthyObs(), warn}, levelWarning},
		{[]nodeObs{healthyObs(), warn, crit}, levelCritical},
	} {
		doc := makeStatusDoc("t", c.obs, clusterExpect)
		if doc.Status != c.want || doc.ExitCode != int(c.want) {
			t.Errorf("%d nodes: status %s exit %d, want %s", len(c.obs), doc.Status, doc.ExitCode, c.want)
		}
	}
	doc := makeStatusDoc("t", []nodeObs{healthyObs(), crit}, clusterExpect)
	if doc.Nodes[1].Reachable || doc.Nodes[1].Posture != nil || !doc.Nodes[0].Reachable {
		t.Errorf("reachability in the document: %+v", doc.Nodes)
	}
	if c := doc.Nodes[0].Certificates[0]; c.DaysLeft != 300 || c.InRenewWindow {
		t.Errorf("certificate %+v: want 300 days left, outside the window", c)
	}
}

func TestPostureText(t *testing.T) {
	p := healthyObs().Health.Posture
	if got := postureText(p, clusterExpect); got != "enforce+acl+tls" {
		t.Errorf("healthy posture %q", got)
	}
	p.BusAuth, p.ACL, p.RouteTLS, p.Monitor = "warn", false, false, "loopback"
	if got := postureText(p, clusterExpect); got != "warn+no-acl+no-route-tls+monitor" {
		t.Errorf("weak posture %q", got)
	}
}
