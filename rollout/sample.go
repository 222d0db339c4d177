package rollout

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/unibus/unibus/internal/converge"
)

// Sample is one node's answer to /readyz and /healthz, judged.
type Sample struct {
	Node string
	// Seq numbers the node's computation of its state: a node serves one
	// computation for up to a second, and the gate counts each once.
	// Zero when the node does not say (then every answer counts).
	Seq   int64
	Ready bool
	// Cluster is the node's cluster block; nil when it has none.
	Cluster *converge.Facts
	// Problem is empty when the node is ready and converged; otherwise
	// one line of counts.
	Problem string
}

// ok: ready and converged.
func (s Sample) ok() bool { return s.Problem == "" }

// healthzDoc is the part of membershipd's /healthz the gate reads.
type healthzDoc struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
	Sample int64  `json:"sample"`
	NATS   *struct {
		Cluster *converge.Facts `json:"cluster"`
	} `json:"nats"`
}

type readyzDoc struct {
	Ready bool   `json:"ready"`
	Error string `json:"error"`
}

// judge turns a node's raw answers into a Sample: /readyz's status and
// body, /healthz's body. expectServers, when not zero, is how many servers
// the spec says the cluster has.
func judge(node string, readyStatus int, readyBody, healthBody []byte, expectServers int) Sample {
	s := Sample{Node: node, Ready: readyStatus == http.StatusOK}
	var h healthzDoc
	if err := json.Unmarshal(healthBody, &h); err != nil {
		s.Problem = "/healthz is not membershipd's health document"
		return s
	}
	s.Seq = h.Sample
	if h.NATS != nil {
		s.Cluster = h.NATS.Cluster
	}
	switch c := s.Cluster; {
	case c != nil && !c.Converged:
		// The cluster block says what /readyz's not_converged does, in
		// full counts.
		s.Problem = c.Reason
		if s.Problem == "" {
			s.Problem = "not converged"
		}
	case !s.Ready:
		var r readyzDoc
		json.Unmarshal(readyBody, &r)
		s.Problem = "not ready"
		if r.Error != "" {
			s.Problem += ": " + r.Error
		} else {
			s.Problem += fmt.Sprintf(" (/readyz %d)", readyStatus)
		}
	case c == nil:
		s.Problem = "no cluster block in /healthz (not a cluster node?)"
	case !c.HealthzOK:
		s.Problem = "nats-server health check failing"
	case c.OwnReplicasCurrent < c.OwnReplicas:
		s.Problem = fmt.Sprintf("own replicas %d/%d current", c.OwnReplicasCurrent, c.OwnReplicas)
	case expectServers > 0 && c.MetaServersExpected != expectServers:
		s.Problem = fmt.Sprintf("meta group expects %d servers, the spec has %d", c.MetaServersExpected, expectServers)
	}
	return s
}

// streak counts consecutive converged samples of a set of nodes. A sample
// counts when every node is ok and each answered from a computation newer
// than the one the previous count used: a node serves one computation for
// up to a second, and polling it faster is no new evidence. One round with
// a node not ok resets the count.
type streak struct {
	n       int
	last    Progress         // of the latest round, for the timeout's error
	counted map[string]int64 // each node's computation at the last count or reset
}

// add records a round (one sample per node) and returns the streak.
func (k *streak) add(round []Sample) int {
	bad, fresh := false, true
	for _, s := range round {
		bad = bad || !s.ok()
		if s.Seq != 0 && s.Seq == k.counted[s.Node] {
			fresh = false
		}
	}
	switch {
	case bad:
		k.n = 0
	case fresh:
		k.n++
	default:
		return k.n
	}
	k.counted = map[string]int64{}
	for _, s := range round {
		k.counted[s.Node] = s.Seq
	}
	return k.n
}

// lastNode and lastProblem are what the timeout's error names: the node and
// condition of the latest round, or, before any round, what the caller had.
func (k *streak) lastNode(nodes []Node) string {
	if k.last.Node != "" {
		return k.last.Node
	}
	return nodes[0].Name
}

func (k *streak) lastProblem(fallback string) string {
	switch {
	case k.last.Problem != "":
		return k.last.Problem
	case fallback != "":
		return fallback
	case k.last.Node != "":
		return fmt.Sprintf("only %d of %d consecutive converged samples", k.last.Streak, k.last.Samples)
	}
	return "no answer yet"
}
