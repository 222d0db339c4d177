package membershipd

import (
	"testing"
	"time"
)

func TestClusterForms(t *testing.T) {
	tc := newTestCluster(t, nil)
	tc.waitReady(30 * time.Second)
	for i, d := range tc.nodes {
		var h health
		getJSON(t, endpoint(d, "/healthz"), &h)
		c := h.NATS.Cluster
		if c == nil || c.Peers != 2 || !c.MetaLeader || !h.Posture.RouteTLS {
			t.Errorf("node %d healthz cluster %+v, route_tls %v; want 2 peers, a meta leader, route TLS", i+1, c, h.Posture.RouteTLS)
		}
	}
}
