package rollout

import (
	"context"
	"encoding/json"
	"time"
)

// Health is the rest of membershipd's public /healthz document: what
// unibus status shows beside the gate's judgement of the cluster block.
type Health struct {
	Status        string  `json:"status"` // "ok", "starting" or "degraded"
	Version       string  `json:"version"`
	Node          string  `json:"node"`
	UptimeSeconds int64   `json:"uptime_seconds"`
	Posture       Posture `json:"posture"`
	Reason        string  `json:"reason,omitempty"`
	Detail        string  `json:"detail,omitempty"`
}

// Posture is the node's security-relevant configuration as it reports it
// (membershipd's posture block).
type Posture struct {
	BusAuth    string `json:"bus_auth"`
	ACL        bool   `json:"acl"`
	ClientTLS  bool   `json:"client_tls"`
	HTTPTLS    bool   `json:"http_tls"`
	ClientCert bool   `json:"client_cert_auth"`
	RouteTLS   bool   `json:"route_tls"`
	Monitor    string `json:"monitor"`
	Store      string `json:"store"`
	KVReplicas int    `json:"kv_replicas"`
	JSSync     string `json:"js_sync"`
}

// Probe asks node n once, as one round of the gate would: the judged
// sample, and its health document. The error is set only when the node
// did not answer (then the sample's Problem says so too).
func Probe(ctx context.Context, n Node, timeout time.Duration, expectServers int) (Sample, *Health, error) {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	readyStatus, readyBody, healthBody, err := ask(ctx, n, timeout)
	if err != nil {
		return Sample{Node: n.Name, Problem: "not answering: " + err.Error()}, nil, err
	}
	s := judge(n.Name, readyStatus, readyBody, healthBody, expectServers)
	var h Health
	if json.Unmarshal(healthBody, &h) != nil {
		return s, nil, nil
	}
	return s, &h, nil
}
