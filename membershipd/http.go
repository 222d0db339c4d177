package membershipd

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", d.handleHealthz)
	mux.HandleFunc("GET /readyz", d.handleReadyz)
	d.apiRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return mux
}

// apiError is the one error shape of the HTTP API.
type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: msg, Code: code})
}

// health is the /healthz document: posture and counts, public by design, so
// it names no stream, subject, room or member.
type health struct {
	Status        string           `json:"status"` // "ok" or "starting" or "degraded"
	Version       string           `json:"version"`
	Node          string           `json:"node"`
	UptimeSeconds int64            `json:"uptime_seconds"`
	Posture       posture          `json:"posture"`
	NATS          *dataPlaneHealth `json:"nats,omitempty"`
	Reason        string           `json:"reason,omitempty"` // a code, see readiness.go
	Detail        string           `json:"detail,omitempty"` // fixed text or counts
	// Sample numbers the computation this answer comes from (the same
	// one serves for up to a second).
	Sample int64 `json:"sample"`
}

// posture is the security-relevant configuration, as facts an operator or a
// monitoring check can compare against what they expect.
type posture struct {
	BusAuth    string `json:"bus_auth"`
	ACL        bool   `json:"acl"` // subject ACLs in force on the bus
	ClientTLS  bool   `json:"client_tls"`
	HTTPTLS    bool   `json:"http_tls"`         // the control plane serves HTTPS
	ClientCert bool   `json:"client_cert_auth"` // clients must present a client-CA certificate
	RouteTLS   bool   `json:"route_tls"`
	Monitor    string `json:"monitor"` // "off" or "loopback"
	Store      string `json:"store"`   // "sqlite" single-node, "kv" clustered
	KVReplicas int    `json:"kv_replicas"`
	JSSync     string `json:"js_sync"`
}

// posture is part of the health snapshot: on a cluster node it asks the KV
// bucket for its replica count.
func (d *Daemon) posture(ctx context.Context) posture {
	monitor := "off"
	if d.MonitorAddr() != "" {
		monitor = "loopback"
	}
	storeKind, replicas := "sqlite", 0
	if d.cluster != nil {
		storeKind, replicas = "kv", d.cfg.Cluster.KVReplicas
		d.cs.mu.Lock()
		kv := d.cs.kv
		d.cs.mu.Unlock()
		if kv != nil {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			if n, err := kv.Replicas(ctx); err == nil {
				replicas = n
			}
			cancel()
		}
	}
	return posture{
		BusAuth:    string(d.cfg.BusAuth),
		ACL:        d.cfg.BusAuth == BusAuthEnforce && d.NATSURL() != "",
		RouteTLS:   d.cluster != nil && d.cluster.tls != nil,
		ClientTLS:  d.clientTLS != nil,
		HTTPTLS:    d.httpTLS != nil,
		ClientCert: d.clientTLS != nil && d.clientTLS.ClientCAs != nil,
		Monitor:    monitor,
		Store:      storeKind,
		KVReplicas: replicas,
		JSSync:     d.cfg.JSSync.String(),
	}
}

// handleHealthz serves the latest health snapshot (at most a second old).
func (d *Daemon) handleHealthz(w http.ResponseWriter, r *http.Request) {
	s := d.healthSnapshot()
	h := health{
		Status:        "ok",
		Version:       Version,
		Node:          d.cfg.NodeName,
		UptimeSeconds: int64(time.Since(d.started).Seconds()),
		Posture:       s.posture,
		NATS:          s.nats,
		Sample:        s.seq,
	}
	if s.notReady != nil {
		// A node that served and stopped (quorum lost, a peer down, a
		// pending bus update) is degraded, not starting.
		h.Status = "starting"
		if s.servedBefore {
			h.Status = "degraded"
		}
		h.Reason, h.Detail = publicReason(s.notReady)
	}
	writeJSON(w, http.StatusOK, h)
}

// handleReadyz answers 200 only when the data plane serves and JetStream
// answers; rollouts and load balancers gate on it. Its error is the reason
// code and its safe message, from the same snapshot as /healthz.
func (d *Daemon) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s := d.healthSnapshot(); s.notReady != nil {
		code, msg := publicReason(s.notReady)
		writeError(w, http.StatusServiceUnavailable, "not_ready", code+": "+msg)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": true})
}
